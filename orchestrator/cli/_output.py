"""What the CLI prints: live per-task progress on stderr (a table, and a line above it for each
attempt that failed, retried or lost its lease), the `--json` objects, errors."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.contracts import Attempt, RetryPolicy, Run, RunStatus, TaskRun, TaskStatus
from orchestrator.engine import grown, policy_delay
from orchestrator.errors import KumoflowError
from orchestrator.ports import Snapshot
from orchestrator.runtime import (
    RUN_SLOT,
    Runtime,
    rate_waits,
    read_flow_result,
    shown_params,
    waiting_for,
)

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
MAX_LINE_ERROR = 200  # characters of an error message in a console line


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


def attempt_lines(
    tasks: Mapping[str, TaskRun], retry: Mapping[str, RetryPolicy], seen: set[tuple[str, int]]
) -> list[tuple[str, str]]:
    """(line, style) for each attempt that ended failed (an error, a lease lost) and is not in
    `seen` (which it joins), saying what comes next: the retry and its delay, or the end.

        task fetch attempt 1 failed: ValueError: boom; retrying in 5 s (attempt 2 of 4)
    """
    out = []
    for task in tasks.values():
        for i, attempt in enumerate(task.attempts):
            if attempt.status is not TaskStatus.FAILED or attempt.error is None:
                continue
            if (task.key, attempt.number) in seen:
                continue
            seen.add((task.key, attempt.number))
            out.append(_attempt_line(task, i, retry.get(task.node)))
    return out


def _attempt_line(task: TaskRun, i: int, policy: RetryPolicy | None) -> tuple[str, str]:
    attempt = task.attempts[i]
    assert attempt.error is not None
    # Retries count within one flow attempt (a flow retry starts them again), as the engine does.
    tries = sum(1 for a in task.attempts[: i + 1] if a.flow_attempt == attempt.flow_attempt)
    message = attempt.error.message.strip().splitlines()[0] if attempt.error.message else ""
    if len(message) > MAX_LINE_ERROR:
        message = message[: MAX_LINE_ERROR - 3] + "..."
    if attempt.error.type == "LeaseExpired":
        what = f"lost its lease ({message})"
    else:
        what = f"failed: {attempt.error.type}: {message}" if message else attempt.error.type
    line = f"task {task.key} attempt {tries} {what}"
    nxt: Attempt | None = task.attempts[i + 1] if i + 1 < len(task.attempts) else None
    total = policy.retries + 1 if policy is not None else None
    of = f" of {total}" if total is not None else ""
    if nxt is not None and nxt.flow_attempt == attempt.flow_attempt:
        delay = _delay(task, tries, policy, attempt, nxt)
        return f"{line}; retrying in {delay} (attempt {tries + 1}{of})", "yellow"
    if nxt is None and not task.status.terminal:
        return line, "yellow"  # what comes next is not recorded yet
    if total is not None and tries >= total:
        return f"{line}; no retries left (attempt {tries}{of})", "red"
    if policy is not None and policy.retry_on != RetryPolicy().retry_on:
        return f"{line}; not retried (not an exception its retry_on names)", "red"
    return f"{line}; not retried", "red"  # an error another attempt would repeat


def _delay(
    task: TaskRun, tries: int, policy: RetryPolicy | None, ended: Attempt, nxt: Attempt
) -> str:
    """The retry's delay as the engine chose it (the policy's, with its jitter); without the
    policy, the time between the failure and the next attempt's due time."""
    if policy is not None:
        seconds = policy_delay(policy, task.run_id, task.key, tries)
    elif ended.ended_at is not None:
        seconds = max(0.0, (nxt.queued_at - ended.ended_at).total_seconds())
    else:
        return "a moment"
    return (
        f"{seconds:.1f} s" if 0 < seconds < 10 and seconds != int(seconds) else f"{seconds:.0f} s"
    )


class LiveProgress:
    """A table of tasks that redraws as the run advances; large runs show counts per status.
    Each attempt that fails (or loses its lease) prints a line above the table as it is seen,
    with what comes next; `events=False` (`--quiet`) leaves the table alone."""

    def __init__(
        self,
        console: Console,
        flow: str,
        task_order: list[str],
        *,
        retry: Mapping[str, RetryPolicy] | None = None,
        events: bool = True,
    ) -> None:
        self._console = console
        self._flow = flow
        self._order = task_order
        self._retry = retry or {}
        self._events = events
        self._seen: set[tuple[str, int]] = set()
        self._live = Live(console=console, refresh_per_second=10, transient=False)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)
        if not self._console.is_terminal:
            self._console.line()  # a terminal ends the last frame's line; a pipe or file does not

    def __call__(self, run: Run, tasks: dict[str, TaskRun]) -> None:
        if self._events:
            for line, style in attempt_lines(tasks, self._retry, self._seen):
                # Above the live table (rich redraws it below). A Text, not markup: errors are
                # user text; print's own style and markup options would reach the table too.
                self._live.console.print(Text(line, style=style), soft_wrap=True)
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
                table.add_row(Text(status.value, style=_STYLE.get(status, "")), str(n))
            return table
        table.add_column("task")
        table.add_column("status")
        table.add_column("attempts", justify="right")
        for key in self._order:
            t = tasks.get(key)
            status = t.status if t else TaskStatus.PENDING
            # Text, not markup: an unstyled status rendered "[]PENDING"; a key is user text.
            table.add_row(
                Text(key),
                Text(status.value, style=_STYLE.get(status, "")),
                str(t.attempt if t else 0),
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
    from orchestrator.waits import waiting

    parked = waiting(snap.outbox)
    if parked:  # sleeps, waits for events, pauses: what each waits for
        out["waiting"] = parked
        for row in out["tasks"]:
            if row["key"] in parked:
                row["waiting_for"] = parked[row["key"]]
    if detail:
        out.update(
            created_at=run.created_at.isoformat(),
            flow_version=run.flow_version,
            code=plan.spec.bundle,  # the deployed code bundle the run is pinned to
            started_at=run.started_at and run.started_at.isoformat(),
            ended_at=run.ended_at and run.ended_at.isoformat(),
            trigger=run.trigger.model_dump(mode="json"),
            params=shown_params(plan.spec, run.params),
            parent=run.parent and {"run_id": run.parent.run_id, "task": run.parent.key},
        )
        waits = waiting_for(rt, run.run_id)
        if RUN_SLOT in waits:  # PENDING, in line for a run slot of its flow (max_active_runs)
            out["waiting_for_slot"] = waits.pop(RUN_SLOT)
        out["priority"] = run.priority
        paced = rate_waits(snap.outbox, plan)
        for row in out["tasks"]:
            task = tasks[row["key"]]
            if row["key"] in waits:  # queued, in line for a slot of its concurrency key
                row["waiting_for_slot"] = waits[row["key"]]
            if row["key"] in paced:  # queued until its rate lets it start (a timer resends it)
                row["waiting_for_rate"] = paced[row["key"]]
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
