"""Detached processes recorded as JSON in the state dir: spawn, identify, stop, measure."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "ProcessRecord",
    "is_running",
    "load_record",
    "load_records",
    "log_tail",
    "remove_record",
    "rss_by_group",
    "save_record",
    "spawn",
    "state_lock",
    "stop",
]

# `cd` then `exec`: the PID we get back becomes the real server, started in the right cwd
# (os.posix_spawn has no cwd argument, and fork() in a threaded parent is unsafe).
_CHDIR_EXEC = 'cd -- "$0" && exec "$@"'


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    kind: str  # "service" | "function"
    pid: int
    pgid: int
    port: int
    cmd: tuple[str, ...]
    started_at: str  # ISO-8601 UTC
    proc_start: int  # /proc/PID/stat starttime: tells our process from a recycled PID
    log: str
    spec: str = ""  # digest of settings outside cmd that must match for reuse
    ready_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cmd"] = list(self.cmd)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        ready = data.get("ready_seconds")
        return cls(
            name=str(data["name"]),
            kind=str(data.get("kind", "service")),
            pid=int(data["pid"]),
            pgid=int(data["pgid"]),
            port=int(data["port"]),
            cmd=tuple(str(c) for c in data["cmd"]),
            started_at=str(data["started_at"]),
            proc_start=int(data["proc_start"]),
            log=str(data["log"]),
            spec=str(data.get("spec", "")),
            ready_seconds=None if ready is None else float(ready),
        )


def _record_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.json"


def save_record(state_dir: Path, record: ProcessRecord) -> None:
    path = _record_path(state_dir, record.name)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record.to_json(), indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a record


def load_record(state_dir: Path, name: str) -> ProcessRecord | None:
    path = _record_path(state_dir, name)
    try:
        return ProcessRecord.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        # A corrupt record cannot identify a process; treat it as stale.
        path.unlink(missing_ok=True)
        return None


def load_records(state_dir: Path) -> list[ProcessRecord]:
    if not state_dir.is_dir():
        return []
    records = (load_record(state_dir, p.stem) for p in sorted(state_dir.glob("*.json")))
    return [r for r in records if r is not None]


def remove_record(state_dir: Path, name: str) -> None:
    _record_path(state_dir, name).unlink(missing_ok=True)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after `comm` (index 0 = state, 2 = pgrp, 19 = starttime)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses; it ends at the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def _reap(pid: int) -> None:
    # Our own children linger as zombies until waited for; other processes' are not ours to reap.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_running(record: ProcessRecord) -> bool:
    """True when the recorded PID is alive and is still the process we started."""
    fields = _stat_fields(record.pid)
    if fields is not None and fields[0] in ("Z", "X"):
        _reap(record.pid)
        return False
    return fields is not None and int(fields[19]) == record.proc_start


def spawn(
    name: str,
    kind: str,
    cmd: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path,
    cwd: Path,
    port: int,
    spec: str = "",
) -> ProcessRecord:
    """Start cmd detached (own session, stdin /dev/null, output to log); return its record."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists():
        log.replace(log.with_name(log.name + ".1"))  # keep the previous run's log for debugging
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    log.write_text(f"# kumoflow: {name} started {started_at}: {' '.join(cmd)}\n")
    argv = ["/bin/sh", "-c", _CHDIR_EXEC, str(cwd), *cmd]
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    # setsid: survives the CLI exiting and its terminal's Ctrl-C; the session id is the
    # process group we kill on stop. setsigdef undoes Python's SIGPIPE=SIG_IGN.
    pid = os.posix_spawn(
        argv[0],
        argv,
        dict(env),
        file_actions=file_actions,
        setsid=True,
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
    )
    fields = _stat_fields(pid)
    proc_start = int(fields[19]) if fields is not None else 0
    return ProcessRecord(
        name=name,
        kind=kind,
        pid=pid,
        pgid=pid,
        port=port,
        cmd=tuple(cmd),
        started_at=started_at,
        proc_start=proc_start,
        log=str(log),
        spec=spec,
    )


def _signal(record: ProcessRecord, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(record.pid, sig)
    # The group catches children the server forked (gunicorn workers, a wrapper's java).
    if record.pgid == record.pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pgid, sig)


def _wait_gone(record: ProcessRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(record.pid)
        if not is_running(record):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop(record: ProcessRecord, *, grace: float = 5.0) -> bool:
    """SIGTERM, wait up to grace, then SIGKILL. True if the process was running."""
    if not is_running(record):
        return False
    _signal(record, signal.SIGTERM)
    if not _wait_gone(record, grace):
        _signal(record, signal.SIGKILL)
        _wait_gone(record, 5.0)
    if record.pgid == record.pid:
        # Group members that ignored SIGTERM or outlived their leader.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pgid, signal.SIGKILL)
    return True


def rss_by_group() -> dict[int, int]:
    """Resident memory in bytes per process group, from /proc/PID/status VmRSS."""
    totals: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                pgid = int(fields[2])
                totals[pgid] = totals.get(pgid, 0) + int(line.split()[1]) * 1024
                break
    return totals


def log_tail(path: Path | str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """Serialise up/down/start across processes (two `dev up` at once must not race)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
