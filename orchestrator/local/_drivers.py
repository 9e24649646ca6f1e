"""Which process drives an in-process run of the history, and what becomes of a run whose
process died.

A process that drives a run (`kumoflow run`, `kumoflow runs retry`) holds an exclusive
`flock` on KUMOFLOW_HOME/drivers/RUN_ID.lock until the run ends. The kernel drops the lock
when the process dies however it dies (SIGKILL, a crash, the machine's OOM killer), so a lock
file nobody holds names a run that nothing drives any more: no heartbeat, no pid guessing.
`reap` ends such runs CANCELLED, naming why, so they show as such and `runs retry` resumes
them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from orchestrator.adapters import kumoflow_home
from orchestrator.engine import CancelRun
from orchestrator.errors import KumoflowError
from orchestrator.runtime import Runtime, advance

DRIVERS_DIR = "drivers"
ABANDONED = "abandoned: the process driving it ended before the run did (killed?)"


def _folder() -> Path:
    return kumoflow_home() / DRIVERS_DIR


def _take(path: Path) -> int | None:
    """An exclusive lock on `path` (created if missing), or None when another process holds
    it. Retries when the file was unlinked under us (its lock guards nothing then)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _release(path: Path, fd: int) -> None:
    # Unlink while still holding the lock: a later taker then makes a fresh file.
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.close(fd)


@contextlib.contextmanager
def driving(run_id: str) -> Iterator[None]:
    """Hold `run_id`'s driver lock while this process drives the run; a run another live
    process drives is refused."""
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.lock"
    fd = _take(path)
    if fd is None:
        raise KumoflowError(
            f"run {run_id} is being driven by another process ({_holder(path)}): "
            "wait for it, or cancel the run with `kumoflow runs cancel`"
        )
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    try:
        yield
    finally:
        _release(path, fd)


def _holder(path: Path) -> str:
    try:
        return f"pid {int(path.read_text())}"
    except (OSError, ValueError):
        return "pid unknown"


def reap(rt: Runtime) -> list[str]:
    """End CANCELLED every run of the history whose driving process died before it ended;
    returns their ids. Runs no `kumoflow` process drove (no lock file) are left alone."""
    folder = _folder()
    if not folder.is_dir():
        return []
    reaped = []
    for path in sorted(folder.glob("*.lock")):
        fd = _take(path)
        if fd is None:
            continue  # its driver is alive
        try:
            run_id = path.stem
            found = rt.state.load(run_id, [])
            if found is not None and not found.run.status.terminal:
                advance(rt, run_id, CancelRun(ABANDONED))
                reaped.append(run_id)
        finally:
            _release(path, fd)
    return reaped
