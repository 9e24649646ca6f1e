"""The history of in-process runs: what `kumoflow run` keeps without any stack, and what the
CLI reads when no stack is running.

Everything lives in one folder, KUMOFLOW_HOME (default ~/.kumoflow): runs.db (SQLite: flows,
runs, task records, timers, dead letters) and blobs/ (results and logs, `gs://BUCKET/OBJECT`
at blobs/BUCKET/OBJECT). Processes share it safely: each `kumoflow run` drives its own runs
and commits through SQLite's write lock.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator import emulators
from orchestrator.adapters import BLOBS_DIR, DB_FILE, FileBlobStore, SqliteStore, kumoflow_home
from orchestrator.errors import KumoflowError
from orchestrator.local._drivers import reap
from orchestrator.local._stack import DevStack
from orchestrator.runtime import InProcessRunner, Runtime, memory_runtime


@dataclass(frozen=True)
class History:
    store: SqliteStore
    blobs: FileBlobStore

    @property
    def where(self) -> str:
        return str(self.store.path.parent)


# How long `kumoflow runs prune` keeps ended runs by default.
KEEP_DAYS_ENV = "KUMOFLOW_HISTORY_DAYS"
KEEP_DAYS = 30.0


def keep_days() -> float:
    raw = os.environ.get(KEEP_DAYS_ENV, "").strip()
    try:
        days = float(raw) if raw else KEEP_DAYS
    except ValueError:
        days = -1
    if days < 0:
        raise KumoflowError(f"{KEEP_DAYS_ENV} must be a number of days (0 or more), got {raw!r}")
    return days


def prune(older_than: timedelta) -> list[str]:
    """Forget the runs of the history that ended more than `older_than` ago: their records,
    and their results and logs under each bucket's runs/RUN_ID/ (results a flow stored under
    a prefix of its own, and objects its tasks wrote, stay). Returns their ids."""
    found = history()
    try:
        ids = found.store.prune(datetime.now(UTC) - older_than)
    finally:
        found.store.close()
    root = found.blobs.root
    buckets = [b for b in root.iterdir() if b.is_dir()] if ids and root.is_dir() else []
    for run_id in ids:
        for bucket in buckets:
            shutil.rmtree(bucket / "runs" / run_id, ignore_errors=True)
    return ids


def history() -> History:
    home = kumoflow_home()
    return History(SqliteStore(home / DB_FILE), FileBlobStore(home / BLOBS_DIR))


def history_runtime() -> Runtime:
    """A runtime over the history, to read and steer runs (`runs show`, `runs cancel`); runs
    whose driving process died are ended first, so they read as such."""
    found = history()
    rt = memory_runtime(store=found.store, blobs=found.blobs)
    reap(rt)
    return rt


def history_runner(functions: dict[str, Callable[..., Any]] | None = None) -> InProcessRunner:
    """A runner whose runs are kept in the history: `kumoflow run`, `runs retry`."""
    found = history()
    runner = InProcessRunner(functions=functions, store=found.store, blobs=found.blobs, shared=True)
    reap(runner.rt)
    return runner


def stack_started() -> bool:
    """Whether `kumoflow dev up` left any process running (healthy or not): then the CLI acts
    on the stack (and says when it is unhealthy), else on the history of in-process runs."""
    return emulators.anything_running(DevStack.from_env().config)
