"""One attempt's end, applied at any width: read the run and the one task, check the
completion (its fencing token, and for a success the facts a reporter must carry: a gate's
choice, the lengths run-time maps read, the one location its result may have), turn an expired
lease into what it stands for (a stored result, a subflow node waiting for its child, or a
failure), and commit the task with its counter arrivals. What the end unblocks is decided from
the counters that commit returns (see _settle).
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.contracts import Run, RunStatus, TaskFailed, TaskRun, TaskSucceeded
from orchestrator.engine import LeaseExpired, Plan, complete, waiting
from orchestrator.errors import BadInputError, NotFoundError
from orchestrator.ports import Commit
from orchestrator.runtime._completion import child_ended, stored
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime._slots import free, keyed
from orchestrator.runtime.control._ctx import Ctx
from orchestrator.runtime.control._outbox import entry, execute, hook_entries
from orchestrator.runtime.control._settle import follow_up, recover
from orchestrator.runtime.control._start import begin

Completion = TaskSucceeded | TaskFailed | LeaseExpired


def complete_task(rt: Runtime, run_id: str, event: Completion) -> bool:
    """Apply one attempt's end; True when it changed state (False: duplicate, stale, late)."""
    what = f"run {run_id}: the end of {event.key!r} attempt {event.attempt}"
    changed, effects = retried(lambda: _apply(rt, run_id, event), what=what)
    effects()
    return changed


def _apply(rt: Runtime, run_id: str, event: Completion) -> tuple[bool, Callable[[], None]]:
    """Read, decide and commit one attempt's end: (changed, the effects to do after)."""
    snap = rt.task_snapshot(run_id, event.key)
    if snap is None:
        raise NotFoundError(f"no run {run_id!r}")
    plan = rt.plan_of(snap.run)
    if event.key not in plan.tasks:
        raise BadInputError(f"run {run_id!r} has no task {event.key!r}")
    if isinstance(event, TaskSucceeded):  # what arrived: a forgery is refused, recorded
        event = _trusted(rt, plan, run_id, event)
    task = snap.tasks.get(event.key)
    if task is None:
        return False, _nothing  # never queued: nothing can have run it
    _check_token(task, event)
    if isinstance(event, LeaseExpired):
        instead = _instead_of_expiry(rt, plan, snap.run, task, event)
        if isinstance(instead, TaskRun):  # a subflow node whose child runs on: it waits
            rt.state.commit(Commit(run_id=run_id, tasks=[(instead, snap.etags[task.key])]))
            return True, _nothing
        # Derived from the store: the same checks as any reporter's completion.
        event = (
            _trusted(rt, plan, run_id, instead) if isinstance(instead, TaskSucceeded) else instead
        )
    ctx = Ctx(rt, plan, snap.run, snap.run_etag)
    options = keyed(plan.tasks[event.key].node.options, task, event.attempt)
    now = rt.clock.now()
    step = complete(plan, snap.run, task, event, now)
    if step.task is None:
        if task.status.terminal and task.attempt == event.attempt:

            def again() -> None:  # a redelivery: finish what a crash left, the slot's release too
                free(rt, run_id, task, event.attempt, options)
                recover(ctx, task)

            return False, again
        return False, _nothing
    entries = [entry(run_id, c, now) for c in step.commands]
    entries += hook_entries(plan, snap.run, [(task, step.task)], now)
    counts = rt.state.commit(  # a conflict: the record moved (a renewal, a cancel): read again
        Commit(
            run_id=run_id,
            tasks=[(step.task, snap.etags[event.key])],
            outbox_add=entries,
            increments=step.increments or {},
        )
    )
    ended = step.task

    def effects() -> None:
        if rt.fault is not None:
            rt.fault("after-commit")
        free(rt, run_id, task, event.attempt, options)  # the attempt is over
        execute(rt, plan, snap.run, entries, now)
        if step.increments:
            follow_up(ctx, [ended], counts)

    return True, effects


def _nothing() -> None:
    pass


def _trusted(rt: Runtime, plan: Plan, run_id: str, event: TaskSucceeded) -> TaskSucceeded:
    branches = plan.tasks[event.key].node.branches
    if branches and event.choice not in branches:
        raise BadInputError(
            f"gate {event.key!r} of run {run_id!r} reports choice {event.choice!r}; it chooses "
            f"between {', '.join(branches)}"
        )
    missing = set(plan.sources(event.key)) - set(event.lengths)
    if missing:
        raise BadInputError(
            f"task.succeeded for {event.key!r} of run {run_id!r} lacks the lengths of "
            f"{', '.join(sorted(missing))}, which map over its result"
        )
    derived = rt.task_result_uri(plan, run_id, event.key)
    if event.result_uri != derived:
        raise BadInputError(
            f"task.succeeded for {event.key!r} of run {run_id!r} names its result at "
            f"{event.result_uri!r}; this task's result can only be at {derived}"
        )
    return event


def _instead_of_expiry(
    rt: Runtime, plan: Plan, run: Run, task: TaskRun, event: LeaseExpired
) -> Completion | TaskRun:
    """What an expired lease stands for. The result was stored: the worker finished and its
    report is still on its way (or was lost), so the stored result is the task's result. A
    subflow node whose child run exists: its worker died between starting the child and
    holding the node, so the node waits for the child (or takes its end, when it ended)."""
    last = task.attempts[-1]
    now = rt.clock.now()
    expired = last.lease_until is not None and now >= last.lease_until
    if not expired or task.attempt != event.attempt or last.token != event.token:
        return event  # renewed, or another attempt: the engine leaves it alone
    if task.child_run is not None and plan.tasks[task.key].node.subflow is not None:
        child = rt.state.load(task.child_run, [])
        if child is not None and child.run.status.terminal:
            return child_ended(rt, plan, child.run)
        if child is not None and child.run.status is RunStatus.PENDING:
            begin(rt, task.child_run)  # its start died between creating and starting it
        if child is not None:
            record = waiting(task, event.attempt, event.token, task.child_run)
            return event if record is None else record
    found = stored(
        rt,
        plan,
        run.run_id,
        task.key,
        event.attempt,
        token=event.token,
        uri=rt.task_result_uri(plan, run.run_id, task.key),
        worker=last.worker or "unknown",
        started_at=last.started_at or now,
        ended_at=now,
    )
    return event if found is None else found


def _check_token(task: TaskRun, event: Completion) -> None:
    last = task.attempts[-1] if task.attempts else None
    if (
        last is not None
        and task.attempt == event.attempt
        and last.token is not None
        and last.token != event.token
        and not task.status.terminal
    ):
        raise BadInputError(
            f"completion of {task.key!r} attempt {event.attempt} carries fencing token "
            f"{event.token[:12]!r}, not the current claim's: a stale worker or a forgery"
        )
