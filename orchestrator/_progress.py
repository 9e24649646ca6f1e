"""Live per-task progress on stderr, and the `--json` summary object."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from contracts import Run, RunStatus, TaskRun, TaskStatus

_STYLE = {
    TaskStatus.SUCCEEDED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.RUNNING: "cyan",
    TaskStatus.RETRYING: "yellow",
    TaskStatus.SCHEDULED: "yellow",
    TaskStatus.SKIPPED: "dim",
    TaskStatus.CANCELLED: "magenta",
}
MAX_ROWS = 30


def task_order(nodes: list[str], keys: list[str]) -> list[str]:
    """Task keys in DAG order, mapped children right after their node's position."""
    rank = {n: i for i, n in enumerate(nodes)}
    return sorted(keys, key=lambda k: (rank.get(k.split("[", 1)[0], len(rank)), _index(k)))


def _index(key: str) -> int:
    return int(key[key.index("[") + 1 : -1]) if key.endswith("]") and "[" in key else -1


def summary(
    run: Run, tasks: dict[str, TaskRun], result: Any, *, task_order: list[str]
) -> dict[str, Any]:
    """The object `kumoflow run --json` prints."""
    error = None
    if run.error is not None:
        where = f"task {run.error.task!r}: " if run.error.task else ""
        error = f"{where}{run.error.type}: {run.error.message}"
    return {
        "run_id": run.run_id,
        "flow": run.flow,
        "status": run.status.value.lower(),
        "result": result if run.status is RunStatus.SUCCEEDED else None,
        "error": error,
        "tasks": [
            {"key": k, "name": t.name, "status": t.status.value.lower(), "attempts": t.attempt}
            for k in task_order
            if (t := tasks.get(k)) is not None
        ],
    }


class LiveProgress:
    """A table of tasks that redraws as the run advances; large runs show counts per status."""

    def __init__(self, console: Console, flow: str, task_order: list[str]) -> None:
        self._console = console
        self._flow = flow
        self._order = task_order
        self._live = Live(console=console, refresh_per_second=10, transient=False)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def __call__(self, run: Run, tasks: dict[str, TaskRun]) -> None:
        self._live.update(self._render(run, tasks))

    def _render(self, run: Run, tasks: dict[str, TaskRun]) -> Table:
        table = Table(
            title=f"{self._flow}  run {run.run_id}  {run.status.value}", title_justify="left"
        )
        if len(self._order) > MAX_ROWS:
            table.add_column("status")
            table.add_column("tasks", justify="right")
            counts: dict[TaskStatus, int] = {}
            for key in self._order:
                status = tasks[key].status if key in tasks else TaskStatus.PENDING
                counts[status] = counts.get(status, 0) + 1
            for status, n in counts.items():
                table.add_row(f"[{_STYLE.get(status, '')}]{status.value}", str(n))
            return table
        table.add_column("task")
        table.add_column("status")
        table.add_column("attempts", justify="right")
        for key in self._order:
            t = tasks.get(key)
            status = t.status if t else TaskStatus.PENDING
            table.add_row(
                key, f"[{_STYLE.get(status, '')}]{status.value}", str(t.attempt if t else 0)
            )
        return table
