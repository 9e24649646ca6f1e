"""What `status`/`up` report: plain frozen data with a JSON view for `--json`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServiceStatus", "StackStatus"]


@dataclass(frozen=True)
class ServiceStatus:
    """One emulator or function process as seen right now."""

    name: str
    kind: str  # "service" (an emulator) | "function" (functions-framework)
    pid: int | None  # None when nothing of ours is running
    port: int
    url: str
    healthy: bool
    rss_bytes: int | None  # VmRSS summed over the process group (gunicorn has workers)
    log: Path
    started_at: str | None = None  # ISO-8601 UTC
    startup_seconds: float | None = None  # spawn until first healthy answer
    target: str | None = None  # functions only

    @property
    def running(self) -> bool:
        return self.pid is not None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "pid": self.pid,
            "port": self.port,
            "url": self.url,
            "healthy": self.healthy,
            "rss_bytes": self.rss_bytes,
            "log": str(self.log),
            "started_at": self.started_at,
            "startup_seconds": self.startup_seconds,
            "target": self.target,
        }


@dataclass(frozen=True)
class StackStatus:
    """The three emulators (always listed, in start order) plus any recorded functions."""

    project: str
    state_dir: Path
    services: tuple[ServiceStatus, ...]
    functions: tuple[ServiceStatus, ...]
    env: dict[str, str]

    @property
    def healthy(self) -> bool:
        """True when every emulator answers its health check (functions not included)."""
        return all(s.healthy for s in self.services)

    def service(self, name: str) -> ServiceStatus:
        for s in (*self.services, *self.functions):
            if s.name == name:
                return s
        raise KeyError(name)

    def to_json(self) -> dict[str, object]:
        return {
            "project": self.project,
            "state_dir": str(self.state_dir),
            "healthy": self.healthy,
            "services": [s.to_json() for s in self.services],
            "functions": [f.to_json() for f in self.functions],
            "env": dict(self.env),
        }
