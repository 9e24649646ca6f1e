"""The orchestrator: apply an event to a run through the engine, commit, then do the side effects.

Side effects go through an outbox committed with the state change, so a crash between commit and
publish is finished by the event's redelivery or by the timer sweep, never lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from contracts import (
    ErrorInfo,
    OutboxEntry,
    ResultRef,
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
    Event,
    FinishRun,
    Plan,
    Reconcile,
    RunState,
    Transition,
    WakeAt,
    decode,
    encode,
    resolve,
    transition,
)
from orchestrator.errors import (
    BadInputError,
    ConflictError,
    KumoflowError,
    NotFoundError,
)
from orchestrator.ports import Commit, Snapshot
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._runtime import Runtime

MAX_CONFLICTS = 20
ABANDONED_AFTER = timedelta(seconds=60)


def advance(rt: Runtime, run_id: str, event: Event, *, recheck: bool = True) -> Transition:
    """Apply `event`; retried on write conflicts. `recheck=False` only for single-writer stores."""
    duplicate_only = True
    for _ in range(MAX_CONFLICTS):
        snap = rt.state.load(run_id)
        if snap is None:
            raise NotFoundError(f"no run {run_id!r}")
        plan = rt.plan(snap.run.flow_version, snap.run.params)
        key = getattr(event, "key", None)
        if key is not None and key not in plan.tasks:
            raise BadInputError(f"run {run_id!r} has no task {key!r}")
        now = rt.clock.now()
        tr = transition(plan, RunState(snap.run, snap.tasks), event, now)
        run = _with_result_uri(rt, plan, tr) if tr.run_changed else tr.state.run
        entries = [_entry(run_id, c, now) for c in tr.commands]
        if tr.changed or tr.run_changed or entries:
            duplicate_only = False
            try:
                rt.state.commit(
                    Commit(
                        run_id=run_id,
                        run=run if tr.run_changed else None,
                        run_etag=snap.run_etag,
                        tasks=[(tr.state.tasks[k], snap.etags.get(k)) for k in tr.changed],
                        outbox_add=entries,
                    )
                )
            except ConflictError:
                continue
        if rt.fault is not None and not duplicate_only:
            rt.fault("after-commit")
        # A no-op event may be the redelivery of one whose handler died after committing.
        leftovers = [e for e in snap.outbox if duplicate_only and e.due_at <= now]
        execute(rt, plan, run, [*entries, *_undelivered(leftovers, snap)], now, tr.state.tasks)
        if recheck and tr.recheck and not isinstance(event, Reconcile):
            event = Reconcile()
            continue
        return tr
    raise ConflictError(f"run {run_id}: gave up after {MAX_CONFLICTS} write conflicts")


def _undelivered(entries: list[OutboxEntry], snap: Snapshot) -> list[OutboxEntry]:
    """Leftover entries whose effect is still missing. A dispatch whose attempt a worker already
    claimed was delivered: publishing it again would only make a duplicate. Stale ones are
    still passed on so that `execute` marks them done."""
    out = []
    for entry in entries:
        task = snap.tasks.get(entry.key or "")
        claimed = (
            entry.kind == "dispatch"
            and task is not None
            and (
                task.attempt != entry.attempt
                or task.status not in (TaskStatus.QUEUED, TaskStatus.SCHEDULED)
            )
        )
        out.append(entry.model_copy(update={"kind": "done"}) if claimed else entry)
    return out


def _entry(run_id: str, command: Command, now: datetime) -> OutboxEntry:
    match command:
        case Dispatch(key=key, attempt=attempt, not_before=at):
            return OutboxEntry(
                id=f"dispatch-{key}-{attempt}",
                run_id=run_id,
                kind="dispatch",
                due_at=at or now,
                key=key,
                attempt=attempt,
                timer=at is not None,
            )
        case WakeAt(at=at):
            return OutboxEntry(
                id=f"wake-{at.timestamp():.0f}", run_id=run_id, kind="wake", due_at=at, timer=True
            )
        case FinishRun():
            return OutboxEntry(id="finish", run_id=run_id, kind="finish", due_at=now)


def _with_result_uri(rt: Runtime, plan: Plan, tr: Transition) -> Run:
    run = tr.state.run
    if run.status is not RunStatus.SUCCEEDED:
        return run
    expr = plan.spec.result
    if isinstance(expr, ResultRef) and plan.members.get(expr.node) == (expr.node,):
        uri = tr.state.tasks[expr.node].result_uri  # reuse the task's object: no copy
    else:
        pickled = any(t.node.options.result_serializer == "pickle" for t in plan.tasks.values())
        uri = rt.result_uri(
            run.run_id, "result", "pickle" if pickled else "json", plan.spec.options.result_storage
        )
    return run.model_copy(update={"result_uri": uri})


def execute(
    rt: Runtime,
    plan: Plan,
    run: Run,
    entries: list[OutboxEntry],
    now: datetime,
    tasks: Mapping[str, TaskRun],
) -> None:
    """Do the due entries' side effects, then mark them done. Safe to repeat."""
    done = []
    for entry in entries:
        if entry.due_at > now:
            continue  # a timer: the sweep fires it when due
        if entry.kind == "dispatch":
            assert entry.key is not None
            assert entry.attempt is not None
            parents = (tasks.get(p) for p in plan.tasks[entry.key].parents)
            inputs = {t.key: t.result_uri for t in parents if t and t.result_uri}
            request_attempt(rt, run, entry.key, entry.attempt, inputs=inputs)
        elif entry.kind == "finish":
            _finish(rt, plan, run, tasks)
        elif entry.kind == "wake":
            advance(rt, run.run_id, Reconcile())
        # kind "done": an effect that already happened; only the record is left to remove
        done.append(entry.id)
    if done:
        rt.state.commit(Commit(run_id=run.run_id, outbox_done=done))


def _finish(rt: Runtime, plan: Plan, run: Run, tasks: Mapping[str, TaskRun]) -> None:
    """Store the flow's result and announce the end; `run` and `tasks` are as committed."""
    if run.status is RunStatus.SUCCEEDED:
        uri = run.result_uri
        if uri is not None and not any(t.result_uri == uri for t in tasks.values()):
            value = flow_result(rt, plan, run, tasks)
            data, ctype, _ = encode(
                value,
                "pickle" if uri.endswith(".pickle") else "json",
                what=f"the result of flow {run.flow!r}",
            )
            rt.blobs.put(uri, data, ctype)
        rt.publish(
            rt.topics.finished,
            RunSucceeded(
                run_id=run.run_id,
                flow=run.flow,
                flow_version=run.flow_version,
                result_uri=uri,
                ended_at=run.ended_at or rt.clock.now(),
            ),
            event_id=f"{run.run_id}/succeeded",
        )
        return
    rt.publish(
        rt.topics.finished,
        RunFailed(
            run_id=run.run_id,
            flow=run.flow,
            flow_version=run.flow_version,
            error=run.error or ErrorInfo(type="Failed", message="run failed"),
            ended_at=run.ended_at or rt.clock.now(),
        ),
        event_id=f"{run.run_id}/{run.status.value.lower()}",
    )


def flow_result(rt: Runtime, plan: Plan, run: Run, tasks: Mapping[str, TaskRun]) -> Any:
    def load(key: str) -> Any:
        task = tasks[key]
        if task.status is not TaskStatus.SUCCEEDED or task.result_uri is None:
            raise NotFoundError(f"task {key!r} has no result")
        return decode(rt.blobs.get(task.result_uri), task.result_uri)

    return resolve(plan.spec.result, run.params, plan.members, load)


def redispatch(rt: Runtime, expired: list[TaskRun]) -> int:
    """Request attempts again whose worker died mid-run; the next worker takes the claim over.
    Pub/Sub may have dropped the original request once it was acknowledged as a duplicate."""
    for task in expired:
        found = rt.state.load_task(task.run_id, task.key)
        if found is None:
            continue
        run = found[0]
        LOGGER.warning(
            "lease of %s attempt %d expired: requesting it again",
            task.key,
            task.attempt,
            extra={"run_id": task.run_id, "task": task.key},
        )
        request_attempt(rt, run, task.key, task.attempt, why="/lease")
    return len(expired)


def request_attempt(
    rt: Runtime,
    run: Run,
    key: str,
    attempt: int,
    why: str = "",
    inputs: dict[str, str] | None = None,
) -> None:
    request = TaskRequested(
        run_id=run.run_id,
        flow_version=run.flow_version,
        key=key,
        attempt=attempt,
        inputs=inputs or {},
    )
    rt.publish(rt.topics.tasks, request, event_id=f"{run.run_id}/{key}/{attempt}{why}", subject=key)


def sweep(rt: Runtime, entries: list[OutboxEntry]) -> int:
    """Fire due timers (retry dispatches, run timeouts); production runs this from a schedule.

    Entries that are not timers belong to the handler that committed them (or to its event's
    redelivery); the sweep takes them over only once they are clearly abandoned."""
    now = rt.clock.now()
    fired = 0
    for entry in entries:
        if not entry.timer and now - entry.due_at < ABANDONED_AFTER:
            continue
        try:
            snap = rt.state.load(entry.run_id)
            if snap is None or not any(e.id == entry.id for e in snap.outbox):
                continue
            plan = rt.plan(snap.run.flow_version, snap.run.params)
            execute(rt, plan, snap.run, [entry], now, snap.tasks)
            fired += 1
        except KumoflowError as e:
            if e.retryable:
                raise  # infrastructure: the next tick tries again
            # One broken entry must not stop every timer behind it.
            LOGGER.error(
                "timer %s of run %s cannot fire: %s",
                entry.id,
                entry.run_id,
                e,
                extra={"run_id": entry.run_id},
            )
    return fired


def tick(rt: Runtime) -> int:
    """One sweeper tick: fire due timers, then request again attempts whose lease ran out."""
    now = rt.clock.now()
    return sweep(rt, rt.timers.due(now)) + redispatch(rt, rt.timers.expired_leases(now))
