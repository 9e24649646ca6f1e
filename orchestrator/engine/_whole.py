"""The whole-run engine: (run state, event, now) -> (new state, commands), over every task.

What production still does with it is what looks at a whole run, once per run (or per flow
attempt): a cancel, a run timeout and the hourly recheck (Reconcile), a resume (`runs retry`),
and the settling of a run that ended with failures (its first error, or a flow retry). Each
completion takes the per-task path instead (engine `complete`, `arrive`, `decide`: O(the task's
degree)); both apply the same rules (_rules, and the attempt moves `_succeeded`/`_failed` here,
which `complete` reuses), and the same table of allowed moves (TASK_TRANSITIONS).

Task records may be absent from a state: absent means PENDING and never touched. No I/O, no
clock reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from orchestrator.contracts import (
    Attempt,
    ErrorInfo,
    Run,
    RunStatus,
    TaskFailed,
    TaskRun,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine._attempt import retry_delay
from orchestrator.engine._plan import Plan
from orchestrator.engine._rules import (
    blocks,
    consumed,
    not_taken,
    returned,
    returned_failure,
    skip_reason,
)
from orchestrator.engine._types import (
    RECHECK_AFTER,
    REDISPATCH_AFTER,
    CancelRun,
    Command,
    Dispatch,
    Event,
    FinishRun,
    Reconcile,
    ResumeRun,
    RunState,
    StartRun,
    Transition,
    WakeAt,
)

S = TaskStatus

# Allowed task-run moves, FROM -> TO, declared as data (Prefect's core_policy idea).
TASK_TRANSITIONS: Final[Mapping[TaskStatus, frozenset[TaskStatus]]] = {
    S.PENDING: frozenset({S.QUEUED, S.SKIPPED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.RETRYING, S.SUCCEEDED, S.FAILED, S.SCHEDULED, S.CANCELLED}),
    S.RUNNING: frozenset({S.RUNNING, S.SUCCEEDED, S.FAILED, S.SCHEDULED, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.RETRYING, S.SUCCEEDED, S.FAILED, S.SCHEDULED, S.CANCELLED}),
    S.RETRYING: frozenset({S.RETRYING, S.SUCCEEDED, S.FAILED, S.SCHEDULED, S.CANCELLED}),
    # A flow-level retry re-queues what failed or never ran.
    S.FAILED: frozenset({S.QUEUED, S.PENDING}),
    S.SKIPPED: frozenset({S.QUEUED, S.PENDING}),
    S.SUCCEEDED: frozenset(),
    S.CANCELLED: frozenset({S.PENDING}),  # resuming a run (ResumeRun)
}
RUN_TRANSITIONS: Final[Mapping[RunStatus, frozenset[RunStatus]]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUCCEEDED: frozenset(),
    # Only ResumeRun moves an ended run; every other event leaves a terminal run alone.
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.CANCELLED: frozenset({RunStatus.RUNNING}),
}
# States whose current attempt may report; SCHEDULED too, since a claim may be unseen yet.
_ACTIVE: Final = frozenset({S.QUEUED, S.SCHEDULED, S.RUNNING, S.RETRYING})


class IllegalTransition(AssertionError):
    """A bug: the engine tried a move its own table forbids."""


@dataclass
class _Step:
    plan: Plan
    run: Run
    tasks: dict[str, TaskRun]
    now: datetime
    changed: set[str] = field(default_factory=set)
    run_changed: bool = False
    commands: list[Command] = field(default_factory=list)
    settle: list[str] = field(default_factory=list)

    def get(self, key: str) -> TaskRun:
        return RunState(self.run, self.tasks).task(self.plan, key)

    def put(self, old: TaskRun, new: TaskRun) -> None:
        if new.status != old.status and new.status not in TASK_TRANSITIONS[old.status]:
            raise IllegalTransition(f"{old.key}: {old.status} -> {new.status}")
        if new.lease_until is not None and new.status not in (S.RUNNING, S.RETRYING):
            new = new.model_copy(update={"lease_until": None})  # only running attempts hold one
        if new.redispatch_at is not None and new.status is not S.QUEUED:
            new = new.model_copy(update={"redispatch_at": None})  # only waiting ones need it
        self.tasks[new.key] = new
        self.changed.add(new.key)
        if new.status.terminal and not old.status.terminal:
            self.settle.append(new.key)

    def set_run(self, **changes: object) -> None:
        new = self.run.model_copy(update=changes)
        if new.status != self.run.status and new.status not in RUN_TRANSITIONS[self.run.status]:
            raise IllegalTransition(f"run {self.run.run_id}: {self.run.status} -> {new.status}")
        self.run = new
        self.run_changed = True


def whole_run(plan: Plan, state: RunState, event: Event, now: datetime) -> Transition:
    step = _Step(plan, state.run, dict(state.tasks), now)
    if isinstance(event, ResumeRun):
        _resume(step, event.attempt)
        return _done(step)
    if state.run.status.terminal:
        return _done(step)
    match event:
        case StartRun():
            _start(step)
        case TaskSucceeded():
            _succeeded(step, event)
        case TaskFailed():
            _failed(step, event)
        case CancelRun(reason=reason):
            _cancel(step, RunStatus.CANCELLED, ErrorInfo(type="Cancelled", message=reason))
        case Reconcile(armed=armed):
            _reconcile(step, armed)
    _settle(step)
    if isinstance(event, Reconcile) and step.run.status is RunStatus.RUNNING:
        step.commands.append(WakeAt(step.now + RECHECK_AFTER))  # and again, while it runs
    return _done(step)


# --- rules ------------------------------------------------------------------------------------


def _start(step: _Step) -> None:
    if step.run.status is not RunStatus.PENDING:
        return
    timeout = step.plan.spec.options.timeout_seconds
    timeout_at = step.now + timedelta(seconds=timeout) if timeout else None
    step.set_run(status=RunStatus.RUNNING, started_at=step.now, timeout_at=timeout_at)
    if timeout_at is not None:
        step.commands.append(WakeAt(timeout_at))
    step.commands.append(WakeAt(step.now + RECHECK_AFTER))
    for key in step.plan.roots:
        _queue(step, key)
    if not step.plan.tasks:
        _finish(step)


def _queue(step: _Step, key: str) -> None:
    old = step.get(key)
    attempt = Attempt(
        number=old.attempt + 1, status=S.QUEUED, queued_at=step.now, flow_attempt=step.run.attempt
    )
    step.put(old, old.model_copy(update={"status": S.QUEUED, "attempts": (*old.attempts, attempt)}))
    step.commands.append(Dispatch(key, attempt.number))


def _current(step: _Step, key: str, attempt: int, token: str) -> TaskRun | None:
    if key not in step.plan.tasks:
        return None
    task = step.get(key)
    if task.attempt != attempt or task.status not in _ACTIVE:
        return None  # duplicate, late or stale: state never advances twice
    held = task.attempts[-1].token
    if held is not None and held != token:
        return None  # fenced: another claim of this attempt (or a forgery) reports
    return task


def _end_attempt(
    task: TaskRun,
    event: TaskSucceeded | TaskFailed,
    status: TaskStatus,
    result_uri: str | None,
    error: ErrorInfo | None,
) -> tuple[Attempt, ...]:
    last = task.attempts[-1].model_copy(
        update={
            "status": status,
            "started_at": event.started_at,
            "ended_at": event.ended_at,
            "worker": event.worker,
            "result_uri": result_uri,
            "error": error,
        }
    )
    return (*task.attempts[:-1], last)


def _succeeded(step: _Step, event: TaskSucceeded) -> None:
    task = _current(step, event.key, event.attempt, event.token)
    if task is None:
        return
    attempts = _end_attempt(task, event, S.SUCCEEDED, event.result_uri, None)
    gate = bool(step.plan.tasks[task.key].node.branches)
    step.put(
        task,
        task.model_copy(
            update={
                "status": S.SUCCEEDED,
                "attempts": attempts,
                "result_uri": event.result_uri,
                "choice": event.choice if gate else None,
                "lengths": event.lengths,
                "next_attempt_at": None,
                "error": None,
            }
        ),
    )


def _failed(step: _Step, event: TaskFailed) -> None:
    task = _current(step, event.key, event.attempt, event.token)
    if task is None:
        return
    error = event.error.model_copy(update={"task": event.key})
    policy = step.plan.tasks[event.key].node.options.retry
    tries = sum(1 for a in task.attempts if a.flow_attempt == step.run.attempt)
    attempts = _end_attempt(task, event, S.FAILED, None, error)
    if event.retryable and tries <= policy.retries:
        due = step.now + timedelta(seconds=retry_delay(step.plan, step.run.run_id, task.key, tries))
        nxt = Attempt(
            number=task.attempt + 1,
            status=S.SCHEDULED,
            queued_at=due,
            flow_attempt=step.run.attempt,
        )
        step.put(
            task,
            task.model_copy(
                update={
                    "status": S.SCHEDULED,
                    "attempts": (*attempts, nxt),
                    "next_attempt_at": due,
                    "error": error,
                }
            ),
        )
        step.commands.append(Dispatch(task.key, nxt.number, due))
        return
    step.put(
        task,
        task.model_copy(
            update={
                "status": S.FAILED,
                "attempts": attempts,
                "error": error,
                "next_attempt_at": None,
            }
        ),
    )


def _settle(step: _Step) -> None:
    while step.settle:
        key = step.settle.pop()
        for child in step.plan.children[key]:
            _settle_child(step, child)
        if key in step.plan.leaves:
            _maybe_finish(step)


def _settle_child(step: _Step, child: str) -> None:
    task = step.get(child)
    if task.status is not S.PENDING:
        return
    parents = [step.get(p) for p in step.plan.tasks[child].parents]
    if not all(p.status.terminal for p in parents):
        return
    blocking = [p for p in parents if blocks(step.plan, p, child)]
    if not blocking and child in step.plan.dynamic:
        return  # a run-time map is grown by the per-task path (see rescue_maps)
    if not blocking:
        _queue(step, child)
        return
    error = skip_reason(step.plan, child, blocking)
    step.put(task, task.model_copy(update={"status": S.SKIPPED, "error": error}))


def _maybe_finish(step: _Step) -> None:
    if step.run.status is RunStatus.RUNNING and all(
        step.get(k).status.terminal for k in step.plan.leaves
    ):
        _finish(step)


def _finish(step: _Step) -> None:
    """As the per-task path judges it (the run's counter counts its leaves): the run fails when
    a leaf did not succeed (a branch not taken aside), or when the flow returns the result of a
    task that failed. A failure that an allow_failure downstream ran past, directly or behind
    the tasks it skipped, is not the run's. The error named is the first failure's."""
    keys = returned(step.plan)
    tasks = [step.get(k) for k in step.plan.tasks]
    bad = [
        t
        for t in (step.get(k) for k in step.plan.leaves)
        if not (t.status is S.SUCCEEDED or not_taken(t))
    ] + [t for t in tasks if returned_failure(step.plan, t, keys)]
    if not bad:
        step.set_run(status=RunStatus.SUCCEEDED, ended_at=step.now)
        step.commands.append(FinishRun(RunStatus.SUCCEEDED, None, step.run.attempt))
        return
    if step.run.attempt <= step.plan.spec.options.retries:
        _retry_flow(step)
        return
    failed = [t for t in tasks if t.status is S.FAILED and not consumed(step.plan, t.key)]
    first = min(  # a run-time map that could not grow failed without an attempt
        failed or [t for t in tasks if t.status is S.FAILED] or bad,
        key=lambda t: ((t.attempts[-1].ended_at if t.attempts else None) or step.now, t.key),
    )
    error = first.error or ErrorInfo(type="TaskFailed", message=f"task {first.key!r} failed")
    step.set_run(status=RunStatus.FAILED, ended_at=step.now, error=error)
    step.commands.append(FinishRun(RunStatus.FAILED, error, step.run.attempt))


def _retry_flow(step: _Step) -> None:
    """Flow retries re-run what failed or was skipped; succeeded tasks keep their results."""
    step.set_run(attempt=step.run.attempt + 1, started_at=step.now)
    for key in step.plan.tasks:
        task = step.get(key)
        if task.status in (S.FAILED, S.SKIPPED):
            step.put(task, task.model_copy(update={"status": S.PENDING, "error": None}))
    step.settle.clear()
    for key in step.plan.tasks:
        task = step.get(key)
        parents = [step.get(p) for p in step.plan.tasks[key].parents]
        if (
            task.status is S.PENDING
            and all(p.status is S.SUCCEEDED for p in parents)
            and not _regrows(step, key)
        ):
            _queue(step, key)


def _regrows(step: _Step, key: str) -> bool:
    """A run-time map (or a child of one) that is not grown in full: the per-task path grows
    it again (see rescue_maps), queueing its children; it is never dispatched itself."""
    owner = step.plan.map_of(key)
    if key in step.plan.dynamic:
        return True
    return owner is not None and step.get(owner).status is not S.SUCCEEDED


def _resume(step: _Step, attempt: int) -> None:
    run = step.run
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED) or run.attempt != attempt:
        return
    for key in step.plan.tasks:
        task = step.get(key)
        if task.status is S.CANCELLED:  # its old attempt's late report is stale from here on
            step.put(task, task.model_copy(update={"status": S.PENDING, "error": None}))
    timeout = step.plan.spec.options.timeout_seconds
    timeout_at = step.now + timedelta(seconds=timeout) if timeout else None
    step.set_run(status=RunStatus.RUNNING, ended_at=None, error=None, timeout_at=timeout_at)
    step.commands.extend(WakeAt(at) for at in (timeout_at, step.now + RECHECK_AFTER) if at)
    _retry_flow(step)
    _maybe_finish(step)  # nothing to run again: a cancel that came after the last completion


def _reconcile(step: _Step, armed: frozenset[tuple[str, int]] | None) -> None:
    run = step.run
    if run.timeout_at is not None and step.now >= run.timeout_at:
        seconds = step.plan.spec.options.timeout_seconds
        _cancel(
            step,
            RunStatus.FAILED,
            ErrorInfo(type="TimeoutError", message=f"flow run exceeded its {seconds} s timeout"),
        )
        return
    # Re-derive from every terminal task: what a lost or reordered event left undone.
    for key, task in step.tasks.items():
        if task.status.terminal:
            step.settle.append(key)
    # Roots are dispatched without records (a claim makes one): none long after the start
    # means that dispatch was lost for good; queue it again, recorded this time.
    if run.attempt == 1 and step.now >= (run.started_at or run.created_at) + RECHECK_AFTER:
        for key in step.plan.roots:
            if key not in step.tasks:
                _queue(step, key)
    if armed is not None:
        _rearm(step, armed)
    if not step.plan.tasks:
        _finish(step)


def _rearm(step: _Step, armed: frozenset[tuple[str, int]]) -> None:
    """A task that waits on a dispatch nobody will send (its retry timer was deleted, its
    request was lost after it left the outbox) would wait forever: arm it again. A dispatch
    that left the outbox less than REDISPATCH_AFTER ago may just be on its way: left alone."""
    for key, task in list(step.tasks.items()):
        if key not in step.plan.tasks or (key, task.attempt) in armed:
            continue
        if task.status is S.SCHEDULED:
            due = task.next_attempt_at or step.now
            if due > step.now or due + REDISPATCH_AFTER <= step.now:
                step.commands.append(Dispatch(key, task.attempt, due))
        elif (
            task.status is S.QUEUED
            and task.redispatch_at is None
            and task.attempts
            and task.attempts[-1].queued_at + REDISPATCH_AFTER <= step.now
        ):
            # Queued by a whole-run step (a flow retry, a resume): the sweep's re-dispatch
            # (every REDISPATCH_AFTER until claimed) takes it over from now.
            step.put(task, task.model_copy(update={"redispatch_at": step.now}))


def _cancel(step: _Step, status: RunStatus, error: ErrorInfo) -> None:
    for key in step.plan.tasks:
        task = step.get(key)
        if not task.status.terminal:
            step.put(task, task.model_copy(update={"status": S.CANCELLED, "error": error}))
    step.settle.clear()
    step.set_run(status=status, ended_at=step.now, error=error)
    step.commands.append(FinishRun(status, error, step.run.attempt))


def _done(step: _Step) -> Transition:
    return Transition(
        state=RunState(step.run, step.tasks),
        changed=frozenset(step.changed),
        run_changed=step.run_changed,
        commands=tuple(step.commands),
    )
