"""The engine one task at a time: what the orchestrator does per event at any width.

A completion changes one task record. When that task ends, it *arrives* at counters: one per
child (how many parents ended, how many of them did not succeed) and, for a leaf, one for the
run (how many leaves ended, how many did not succeed). Leaves are enough: a leaf ends only after
every ancestor ended, every task is a leaf or an ancestor of one, and all leaves succeed only
if every task did. The store applies those increments atomically with the task
record and returns the values they produced, so the one writer that brings a counter to its
target decides the child (queue or skip) or the run's finish. Nothing here reads siblings: a
step costs O(the task's degree), never O(the run).

Counters are per flow attempt: a flow retry starts fresh ones whose targets (`need`) count only
what runs again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.contracts import (
    NO_PATH,
    NOT_A_LIST,
    Attempt,
    ErrorInfo,
    ResultRef,
    Run,
    RunStatus,
    TaskFailed,
    TaskRun,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine._attempt import held, with_lease
from orchestrator.engine._counters import arrive
from orchestrator.engine._plan import Plan
from orchestrator.engine._rules import skip_reason
from orchestrator.engine._types import (
    RECHECK_AFTER,
    REDISPATCH_AFTER,
    Command,
    Dispatch,
    LeaseExpired,
    WakeAt,
)
from orchestrator.engine._values import path_text
from orchestrator.engine._whole import _failed, _Step, _succeeded

S = TaskStatus
# The widest run-time map (KUMOFLOW_MAX_MAP_WIDTH changes it). A map over a longer list fails
# with a MapError instead of growing. 10,000 is the width the benchmarks run (about a minute on
# the local stack; ~20,000 pushes and >= 30,000 writes); the growth of a map is still one
# invocation, and at 100,000 that was 100,000 publishes and 419 MB in one function instance.
MAX_MAP_WIDTH = 10_000
MAX_MAP_WIDTH_ENV = "KUMOFLOW_MAX_MAP_WIDTH"


@dataclass(frozen=True, slots=True)
class Local:
    """One task's step: its new record (None: nothing to do), commands, counter arrivals."""

    task: TaskRun | None
    commands: tuple[Command, ...] = ()
    increments: Mapping[str, Mapping[str, int]] | None = None


def complete(
    plan: Plan,
    run: Run,
    task: TaskRun,
    event: TaskSucceeded | TaskFailed | LeaseExpired,
    now: datetime,
) -> Local:
    """Apply one attempt's end to its task. Duplicates, stale attempts, other claims' tokens and
    events for a finished run change nothing. A TaskSucceeded's `result_uri` must already be the
    location the caller derived (never the one from the wire)."""
    if run.status.terminal or task.key not in plan.tasks:
        return Local(None)
    last = task.attempts[-1] if task.attempts else None
    if last is None or last.token is None:
        return Local(None)  # never claimed: no worker can have run it
    if isinstance(event, LeaseExpired):
        if (
            task.status not in (S.RUNNING, S.RETRYING)
            or last.lease_until is None  # no lease to run out: a subflow node waiting
            or now < last.lease_until
        ):
            return Local(None)  # renewed since the sweeper looked, waiting, or already over
        event = TaskFailed(
            run_id=run.run_id,
            key=task.key,
            attempt=event.attempt,
            token=event.token,
            error=ErrorInfo(
                type="LeaseExpired",
                message=(
                    f"attempt {event.attempt} of {task.key!r} stopped renewing its lease "
                    f"(worker {last.worker or '?'} died, or outlived its function's timeout)"
                ),
            ),
            retryable=True,
            worker=last.worker or "unknown",
            started_at=last.started_at or now,
            ended_at=now,
        )
    step = _Step(plan, run, {task.key: task}, now)
    if isinstance(event, TaskSucceeded):
        _succeeded(step, event)
    else:
        _failed(step, event)
    if task.key not in step.changed:
        return Local(None)
    new = step.tasks[task.key]
    arrivals = arrive(plan, run, new) if new.status.terminal else None
    return Local(new, tuple(step.commands), arrivals)


def stray(run: Run, task: TaskRun) -> TaskRun | None:
    """A task record whose lease or re-dispatch time nothing will ever act on (the sweep's
    queries would keep returning it): `task` without them, or None when they still mean
    something. In an ended run a task still going ends CANCELLED, as the run's end leaves
    every task it cancels; elsewhere a lease of an attempt not running, or a re-dispatch of
    one not queued, is dropped."""
    if run.status.terminal:
        if task.lease_until is None and task.redispatch_at is None and task.status.terminal:
            return None
        cleared = task.model_copy(update={"lease_until": None, "redispatch_at": None})
        if task.status.terminal:
            return cleared
        error = run.error or ErrorInfo(
            type="Cancelled", message=f"its run ended {run.status.value} while it was going"
        )
        return cleared.model_copy(update={"status": S.CANCELLED, "error": error})
    update: dict[str, object] = {}
    if task.lease_until is not None and task.status not in (S.RUNNING, S.RETRYING):
        update["lease_until"] = None
    if task.redispatch_at is not None and task.status is not S.QUEUED:
        update["redispatch_at"] = None
    return task.model_copy(update=update) if update else None


def started(plan: Plan, run: Run, now: datetime) -> tuple[Run, tuple[Command, ...]]:
    """The run moves to RUNNING (its roots are queued by the caller, in chunks)."""
    if run.status is not RunStatus.PENDING:
        return run, ()
    timeout = plan.spec.options.timeout_seconds
    timeout_at = now + timedelta(seconds=timeout) if timeout else None
    new = run.model_copy(
        update={"status": RunStatus.RUNNING, "started_at": now, "timeout_at": timeout_at}
    )
    wakes = (WakeAt(now + RECHECK_AFTER),)  # the rescue of a run whose last event was lost
    return new, (*wakes, WakeAt(timeout_at)) if timeout_at is not None else wakes


def queued(
    run: Run, plan: Plan, key: str, existing: TaskRun | None, now: datetime
) -> tuple[TaskRun, Dispatch]:
    """The record of `key` queued for its next attempt, and the dispatch that announces it."""
    base = existing or _fresh(run, plan, key)
    attempt = Attempt(
        number=base.attempt + 1, status=S.QUEUED, queued_at=now, flow_attempt=run.attempt
    )
    record = base.model_copy(
        update={
            "status": S.QUEUED,
            "attempts": (*base.attempts, attempt),
            "error": None,
            "redispatch_at": now + REDISPATCH_AFTER,
        }
    )
    return record, Dispatch(key, attempt.number)


def skipped(
    run: Run, plan: Plan, key: str, existing: TaskRun | None, parents: list[TaskRun]
) -> TaskRun:
    """`key` will not run: a branch not taken, or an upstream task that did not succeed."""
    error = skip_reason(plan, key, parents)
    base = existing or _fresh(run, plan, key)
    return base.model_copy(update={"status": S.SKIPPED, "error": error})


def claimable(
    run: Run, plan: Plan, key: str, record: TaskRun | None, attempt: int, now: datetime
) -> TaskRun | None:
    """The record a claim of `key`'s attempt starts from: the stored one, or, for a root's first
    attempt (dispatched without a record, see start), a queued one the claim will create."""
    if record is None and key in plan.roots and attempt == 1 and run.attempt == 1:
        return queued(run, plan, key, None, now)[0]
    return record


def waiting(task: TaskRun, attempt: int, token: str, child_run: str) -> TaskRun | None:
    """The attempt `token` holds now waits on subflow run `child_run` (named from its claim),
    without a lease (no worker holds it; the child's end completes it, and the child has its
    own rescues). None when the claim is no longer held (it ended, or its lease ran out)."""
    last = held(task, attempt, token)
    return None if last is None else with_lease(task, last, None, child_run=child_run)


def expanded(run: Run, plan: Plan, key: str, width: int, limit: int = MAX_MAP_WIDTH) -> TaskRun:
    """The record of run-time map `key` once its `width` children exist, or FAILED with why it
    cannot have them (among others: more than `limit` of them): never run itself, it ends as
    they are created."""
    record = _fresh(run, plan, key)
    error = _map_error(plan, key, width, limit)
    if error is not None:
        failure = ErrorInfo(type="MapError", message=error, task=key)
        return record.model_copy(update={"status": S.FAILED, "error": failure})
    return record.model_copy(update={"status": S.SUCCEEDED, "width": width})


def growing(run: Run, plan: Plan, key: str, width: int, existing: TaskRun | None) -> TaskRun:
    """Run-time map `key` begins to create its `width` children: its record says so, with a
    cursor (`grown`, how many exist), before any child exists. No lease: no worker holds it."""
    base = existing or _fresh(run, plan, key)
    return base.model_copy(update={"status": S.RUNNING, "width": width, "grown": 0, "error": None})


def is_growing(task: TaskRun) -> bool:
    return task.status is S.RUNNING and task.grown is not None and not task.attempts


def grew(task: TaskRun, upto: int, *, done: bool = False) -> TaskRun:
    """The growing map with its first `upto` children created; `done`: it has them all."""
    return task.model_copy(update={"grown": upto, "status": S.SUCCEEDED if done else S.RUNNING})


def _map_error(plan: Plan, key: str, width: int, limit: int) -> str | None:
    source = plan.dynamic[key]
    what = path_text(ResultRef(node=source.task), source.path)
    if width == NOT_A_LIST:
        return f"task {key!r} maps over {what} of task {source.task!r}, which is not a list"
    if width == NO_PATH:
        return f"task {key!r} maps over {what}, which does not resolve on {source.task!r}'s result"
    if width > limit:
        return (
            f"task {key!r} maps over {what} of task {source.task!r}, a list of {width} elements: "
            f"more than the maximum map width, {limit}. Raise {MAX_MAP_WIDTH_ENV} (default "
            f"{MAX_MAP_WIDTH}) where the orchestrator runs, or map over batches of the list"
        )
    for arg, items in source.zipped.items():
        if len(items) != width:
            return (
                f"task {key!r} maps over lists of different lengths ({source.arg}={width} "
                f"at run time, {arg}={len(items)})"
            )
    return None


def _fresh(run: Run, plan: Plan, key: str) -> TaskRun:
    planned = plan.tasks[key]
    return TaskRun(
        run_id=run.run_id,
        key=key,
        node=planned.node.key,
        name=planned.node.options.name,
        map_index=planned.map_index,
    )
