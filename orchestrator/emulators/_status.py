"""What `status`/`up` report: plain frozen data with a JSON view for `--json`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = ["Health", "ServiceStatus", "StackStatus"]


class Health(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    NOT_STARTED = "not started"  # an optional service nobody asked for: not a fault


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
    # The stack should have it running: a core service, or an optional one it started.
    expected: bool = True

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def health(self) -> Health:
        if self.healthy:
            return Health.HEALTHY
        return Health.UNHEALTHY if self.expected or self.running else Health.NOT_STARTED

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "pid": self.pid,
            "port": self.port,
            "url": self.url,
            "healthy": self.healthy,
            "state": self.health.value,
            "rss_bytes": self.rss_bytes,
            "log": str(self.log),
            "started_at": self.started_at,
            "startup_seconds": self.startup_seconds,
            "target": self.target,
        }


@dataclass(frozen=True)
class StackStatus:
    """The emulators (all listed, in start order, optional ones too) plus any recorded
    functions."""

    project: str
    state_dir: Path
    services: tuple[ServiceStatus, ...]
    functions: tuple[ServiceStatus, ...]
    env: dict[str, str]

    @property
    def healthy(self) -> bool:
        """True when every emulator the stack should run answers its health check (functions
        not included; an optional service not started is no fault)."""
        return all(s.healthy for s in self.services if s.expected)

    def named(self, health: Health) -> list[str]:
        return [s.name for s in self.services if s.health is health]

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
            "running": self.named(Health.HEALTHY),
            "not_started": self.named(Health.NOT_STARTED),
            "services": [s.to_json() for s in self.services],
            "functions": [f.to_json() for f in self.functions],
            "env": dict(self.env),
        }
