"""What the CLI prints: live per-task progress on stderr, the `--json` objects, errors."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from orchestrator.contracts import Run, RunStatus, TaskRun, TaskStatus
from orchestrator.engine import grown
from orchestrator.errors import KumoflowError
from orchestrator.ports import Snapshot
from orchestrator.runtime import Runtime, masked, read_flow_result, secret_params

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
        if not self._console.is_terminal:
            self._console.line()  # a terminal ends the last frame's line; a pipe or file does not

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


def describe(
    rt: Runtime, snap: Snapshot, order: list[str] | None = None, *, detail: bool = False
) -> dict[str, Any]:
    """A run as `run --json` and `runs show` print it: every planned task, in DAG order."""
    run = snap.run
    plan = grown(rt.plan_of(run), snap.tasks)  # run-time maps' children are tasks to show too
    result = read_flow_result(rt, plan, run) if run.status is RunStatus.SUCCEEDED else None
    keys = list(plan.tasks) if order is None else task_order(order, list(plan.tasks))
    tasks = {
        k: snap.tasks.get(k)
        or TaskRun(
            run_id=run.run_id,
            key=k,
            node=plan.tasks[k].node.key,
            name=plan.tasks[k].node.options.name,
        )
        for k in keys
    }
    out = summary(run, tasks, result, task_order=keys)
    out["result_uri"] = run.result_uri
    if detail:
        out.update(
            created_at=run.created_at.isoformat(),
            flow_version=run.flow_version,
            started_at=run.started_at and run.started_at.isoformat(),
            ended_at=run.ended_at and run.ended_at.isoformat(),
            trigger=run.trigger.model_dump(mode="json"),
            params=masked(run.params, secret_params(plan.spec)),
            parent=run.parent and {"run_id": run.parent.run_id, "task": run.parent.key},
        )
        for row in out["tasks"]:
            task = tasks[row["key"]]
            row["result_uri"] = task.result_uri
            if task.child_run:
                row["child_run"] = task.child_run  # a subflow's run: `runs show` it
            row["history"] = [a.model_dump(mode="json", exclude_none=True) for a in task.attempts]
    return out


def emit_run(out: dict[str, Any], as_json: bool) -> None:
    """Print a run's outcome: one JSON object, or a coloured line and the result."""
    if as_json:
        click.echo(json.dumps(out, default=str))
        return
    status = out.get("status")
    color = "green" if status in ("succeeded", "started") else "red"
    click.secho(f"run {out.get('run_id')} {status}", fg=color, err=True)
    if out.get("error"):
        click.secho(f"error: {out['error']}", fg="red", err=True)
    if out.get("result_uri"):
        click.echo(f"result stored at {out['result_uri']}", err=True)
    if status == "succeeded":
        click.echo(json.dumps(out.get("result"), indent=2, default=str))


def echo(value: Any, as_json: bool, human: str) -> None:
    click.echo(json.dumps(value, default=str) if as_json else human)


def fail(message: str, as_json: bool) -> None:
    """Print an error (a JSON object with --json) and exit with code 2.

    An error ends with the next thing to try: a message that names no command to run gets a
    pointer to the command's help, where its examples are."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and "`kumoflow" not in message:
        message = f"{message.rstrip('.')} (examples: `{ctx.command_path} --help`)"
    if as_json:
        click.echo(json.dumps({"error": message, "status": "error"}))
    else:
        click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


@contextlib.contextmanager
def guard(as_json: bool) -> Iterator[None]:
    """Turn our errors into a clear message and exit code 2."""
    try:
        yield
    except KumoflowError as e:
        fail(str(e), as_json)
