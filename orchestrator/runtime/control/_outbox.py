"""Side effects after a commit: dispatch requests, run announcements, and the outbox entries
that stand for them until they are done.

An outbox entry is committed with the state change that causes it and deleted once its effect
happened. Its `due_at` is when the sweep takes it over: a timer's due time (retry delays, run
timeouts), or, for an effect the committing handler does at once (a run's finish), the commit
time plus ABANDONED_AFTER, so the sweep only adopts what a crashed handler left behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from orchestrator.contracts import (
    ErrorInfo,
    HooksRequested,
    HookState,
    OutboxEntry,
    OutboxKind,
    Run,
    RunFailed,
    RunStatus,
    RunSucceeded,
    TaskRequested,
    TaskRun,
    TaskStatus,
)
from orchestrator.engine import (
    Command,
    Dispatch,
    FinishRun,
    Plan,
    WakeAt,
    decode,
    encode,
    flow_serializer,
    resolve,
    result_refs,
    result_task,
    task_serializer,
)
from orchestrator.errors import ConflictError
from orchestrator.ports import Commit
from orchestrator.runtime._completion import child_ended, report
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime._slots import free_run_slot

ABANDONED_AFTER = timedelta(seconds=60)
HOOK_STATES = {
    RunStatus.SUCCEEDED: HookState.COMPLETED,
    RunStatus.FAILED: HookState.FAILED,
    RunStatus.CANCELLED: HookState.CANCELLED,
}
# The hook state of each final task status (a task retried is not final: RETRYING).
TASK_HOOK_STATES = {
    TaskStatus.SUCCEEDED: HookState.COMPLETED,
    TaskStatus.FAILED: HookState.FAILED,
    TaskStatus.CANCELLED: HookState.CANCELLED,
}
DONE_AT_ONCE = (OutboxKind.DISPATCH, OutboxKind.FINISH, OutboxKind.HOOKS)
CHUNK = 400  # records per commit: far under Firestore's 10 MiB request limit at any width


def entry(run_id: str, command: Command, now: datetime) -> OutboxEntry:
    match command:
        case Dispatch(key=key, attempt=attempt, not_before=at):
            return OutboxEntry(
                id=f"dispatch-{key}-{attempt}",
                run_id=run_id,
                kind=OutboxKind.DISPATCH,
                due_at=at or now + ABANDONED_AFTER,
                key=key,
                attempt=attempt,
                timer=at is not None,
            )
        case WakeAt(at=at):
            return OutboxEntry(
                id=f"wake-{at.timestamp():.0f}",
                run_id=run_id,
                kind=OutboxKind.WAKE,
                due_at=at,
                timer=True,
            )
        case FinishRun(status=status, error=error, attempt=attempt):
            # The ended attempt's facts ride with the entry: when the sweep adopts it after a
            # resume began attempt + 1, it still announces the attempt that ended.
            ended = {
                "status": status.value,
                "error": error.model_dump(mode="json") if error else None,
                "ended_at": now.isoformat(),
            }
            return OutboxEntry(
                id=f"finish-{attempt}",
                run_id=run_id,
                kind=OutboxKind.FINISH,
                due_at=now + ABANDONED_AFTER,
                attempt=attempt,
                detail=ended,
            )


def hook_entries(
    plan: Plan, run: Run, tasks: Sequence[tuple[TaskRun | None, TaskRun]], now: datetime
) -> list[OutboxEntry]:
    """The HOOKS entries of the (before, after) task records a commit moves to a final state
    whose hooks the task declares: committed with that state, so its hooks are requested
    once it is committed (and, by the sweep, after a crash before the request)."""
    hooks = plan.spec.hooks
    if hooks is None or not hooks.tasks:
        return []
    out = []
    for before, task in tasks:
        state = TASK_HOOK_STATES.get(task.status)
        if state is None or task.attempt == 0 or (before and before.status is task.status):
            continue  # not a final end, none of its attempts ran, or not this commit's end
        planned = plan.tasks.get(task.key)
        declared = hooks.tasks.get(planned.node.task) if planned else None
        if declared is None or not declared.for_state(state):
            continue
        out.append(
            OutboxEntry(
                id=f"hooks-{task.key}-{task.attempt}",
                run_id=run.run_id,
                kind=OutboxKind.HOOKS,
                due_at=now + ABANDONED_AFTER,
                key=task.key,
                attempt=task.attempt,
                detail={"state": state.value, "flow_attempt": run.attempt},
            )
        )
    return out


def execute(
    rt: Runtime,
    plan: Plan,
    run: Run,
    entries: Sequence[OutboxEntry],
    now: datetime,
    delivered: Sequence[str] = (),
) -> None:
    """Do the effects of entries a handler just committed (timers wait for the sweep), then
    delete them, with the `delivered` ones (done already: only their records are left), in
    one commit. Safe to repeat: every effect is idempotent downstream."""
    due = [e for e in entries if not e.timer or e.due_at <= now]
    dispatches = [
        (e.key, e.attempt) for e in due if e.kind is OutboxKind.DISPATCH and e.key and e.attempt
    ]
    if dispatches:
        request(rt, run, dispatches)
    for e in due:
        if e.kind is OutboxKind.HOOKS:
            request_task_hooks(rt, plan, run, e)
    for e in due:
        if e.kind is OutboxKind.FINISH:
            announce(rt, plan, ended(run, e))
            if run.status.terminal:  # not resumed since: its run slot goes to the next run
                free_run_slot(rt, run, plan.spec)
    # Wakes and checks are the sweep's: it marks them done once it fired them.
    done = [e.id for e in due if e.kind in DONE_AT_ONCE]
    done += delivered
    if done:
        rt.state.commit(Commit(run_id=run.run_id, outbox_done=done))


def ended(run: Run, finish: OutboxEntry) -> Run:
    """The run as its finish entry's flow attempt ended (the run may have been resumed since)."""
    detail = finish.detail
    status = detail.get("status")
    if finish.attempt is None or not isinstance(status, str):
        return run  # an entry written before entries carried the attempt's end
    error = detail.get("error")
    at = detail.get("ended_at")
    return run.model_copy(
        update={
            "attempt": finish.attempt,
            "status": RunStatus(status),
            "error": ErrorInfo.model_validate(error) if isinstance(error, dict) else None,
            "ended_at": datetime.fromisoformat(at) if isinstance(at, str) else run.ended_at,
        }
    )


def request_task_hooks(rt: Runtime, plan: Plan, run: Run, hooks: OutboxEntry) -> None:
    """Publish a HOOKS entry's request: its task's hooks, on its flow's code's worker."""
    state, flow_attempt = hooks.detail.get("state"), hooks.detail.get("flow_attempt")
    if not isinstance(state, str) or not isinstance(flow_attempt, int) or hooks.key is None:
        return  # not an entry this code wrote: nothing it could name is requested
    req = HooksRequested(
        run_id=run.run_id,
        flow_version=run.flow_version,
        attempt=flow_attempt,
        state=HookState(state),
        key=hooks.key,
        task_attempt=hooks.attempt,
    )
    event_id = f"{run.run_id}/{hooks.key}/{hooks.attempt}/hooks"
    rt.bus.publish(rt.topics.tasks, rt.envelope(req, event_id=event_id, code=plan.spec.bundle))


def request(rt: Runtime, run: Run, attempts: Sequence[tuple[str, int]], why: str = "") -> None:
    """Publish task.requested for each (key, attempt), all in flight at once, each routed to
    the code its run's flow was deployed with."""
    code = rt.spec(run.flow_version).bundle
    rt.bus.publish_all(
        rt.topics.tasks,
        [
            rt.envelope(
                TaskRequested(
                    run_id=run.run_id, flow_version=run.flow_version, key=key, attempt=attempt
                ),
                event_id=f"{run.run_id}/{key}/{attempt}{why}",
                subject=key,
                code=code,
            )
            for key, attempt in attempts
        ],
    )


def announce(rt: Runtime, plan: Plan, run: Run) -> None:
    """Store the flow's result (unless it is a task's object), report a subflow's end to its
    parent, and publish the run's end, once per flow attempt (`{run}/{attempt}/{status}`)."""
    common = {
        "run_id": run.run_id,
        "flow": run.flow,
        "flow_version": run.flow_version,
        "ended_at": run.ended_at or rt.clock.now(),
        "attempt": run.attempt,
    }
    ended: RunSucceeded | RunFailed
    if run.status is RunStatus.SUCCEEDED:
        uri = run.result_uri
        # A task's object is the result, unless a parent node's location must hold it.
        if uri is not None and (result_task(plan) is None or run.parent is not None):
            data, ctype, _ = encode(
                flow_result(rt, plan, run),
                flow_serializer(plan),
                what=f"the result of flow {run.flow!r}",
            )
            _put_once(rt, uri, data, ctype)
        ended = RunSucceeded(result_uri=uri, **common)
    else:
        error = run.error or ErrorInfo(type="Failed", message="run failed")
        ended = RunFailed(error=error, status=run.status, **common)
    if run.parent is not None:
        _complete_parent(rt, run)
    event_id = f"{run.run_id}/{run.attempt}/{run.status.value.lower()}"
    if plan.spec.hooks is not None or rt.notify:  # a worker runs them, after this commit
        hooks = HooksRequested(
            run_id=run.run_id,
            flow_version=run.flow_version,
            attempt=run.attempt,
            state=HOOK_STATES[run.status],
        )
        # Hooks are the flow's code: routed, as its task requests are, to its code's worker.
        envelope = rt.envelope(hooks, event_id=f"{event_id}/hooks", code=plan.spec.bundle)
        rt.bus.publish(rt.topics.tasks, envelope)
    LOGGER.info(
        "run ended",
        extra={
            "run_id": run.run_id,
            "flow": run.flow,
            "status": run.status.value,
            "attempt": run.attempt,
            "reason": run.error.type if run.error else None,
        },
    )
    rt.publish(rt.topics.finished, ended, event_id=event_id)


def _put_once(rt: Runtime, uri: str, data: bytes, content_type: str) -> None:
    """Results are write-once: the first stored is the result (a repeated announce stores the
    same bytes; a subflow run of an attempt that lost its claim may not replace it)."""
    with contextlib.suppress(ConflictError):
        rt.blobs.put(uri, data, content_type)


def _complete_parent(rt: Runtime, run: Run) -> None:
    """A subflow's run ended: report it as the end of the parent node's attempt, with that
    attempt's token, as its worker would (the parent's orchestrator trusts nothing else)."""
    assert run.parent is not None
    head = rt.state.load(run.parent.run_id, [])
    if head is None:
        return  # the parent is gone (deleted): nobody waits for this child
    report(rt, child_ended(rt, rt.plan_of(head.run), run))


def flow_result(rt: Runtime, plan: Plan, run: Run) -> Any:
    """The flow's return value, read from the results its expression names."""

    def load(key: str) -> Any:
        data = rt.blobs.get(rt.task_result_uri(plan, run.run_id, key))
        return decode(data, task_serializer(plan, key))

    plan = rt.grown(plan, run.run_id, result_refs(plan.spec.result))
    return resolve(plan.spec.result, run.params, plan.members, load)


def read_flow_result(rt: Runtime, plan: Plan, run: Run) -> Any:
    """A finished run's stored result (what `runs show` and the test backends print)."""
    if run.result_uri is None:
        return None
    return decode(rt.blobs.get(run.result_uri), flow_serializer(plan))
