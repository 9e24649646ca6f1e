"""The history of in-process runs: what `kumoflow run` keeps without any stack, and what the
CLI reads when no stack is running.

Everything lives in one folder, KUMOFLOW_HOME (default ~/.kumoflow): runs.db (SQLite: flows,
runs, task records, timers, dead letters) and blobs/ (results and logs, `gs://BUCKET/OBJECT`
at blobs/BUCKET/OBJECT). Processes share it safely: each `kumoflow run` drives its own runs
and commits through SQLite's write lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator import emulators
from orchestrator.adapters import BLOBS_DIR, DB_FILE, FileBlobStore, SqliteStore, kumoflow_home
from orchestrator.local._stack import DevStack
from orchestrator.runtime import InProcessRunner, Runtime, memory_runtime


@dataclass(frozen=True)
class History:
    store: SqliteStore
    blobs: FileBlobStore

    @property
    def where(self) -> str:
        return str(self.store.path.parent)


def history() -> History:
    home = kumoflow_home()
    return History(SqliteStore(home / DB_FILE), FileBlobStore(home / BLOBS_DIR))


def history_runtime() -> Runtime:
    """A runtime over the history, to read and steer runs (`runs show`, `runs cancel`)."""
    found = history()
    return memory_runtime(store=found.store, blobs=found.blobs)


def history_runner(functions: dict[str, Callable[..., Any]] | None = None) -> InProcessRunner:
    """A runner whose runs are kept in the history: `kumoflow run`, `runs retry`."""
    found = history()
    return InProcessRunner(functions=functions, store=found.store, blobs=found.blobs, shared=True)


def stack_started() -> bool:
    """Whether `kumoflow dev up` left any process running (healthy or not): then the CLI acts
    on the stack (and says when it is unhealthy), else on the history of in-process runs."""
    return emulators.anything_running(DevStack.from_env().config)
