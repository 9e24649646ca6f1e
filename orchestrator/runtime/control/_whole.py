"""The whole-run path: events that look at every task of a run, once per run.

Cancelling, a run timeout, and settling a run that ended with failures (the first failure's
error, or a flow retry) read the whole run and commit every change in one batch. They happen
once per run (per flow attempt), so their O(run) cost does not grow with the events of a run.
A flow retry also sets the targets of the next attempt's counters (only what runs again).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from orchestrator.contracts import OutboxEntry, OutboxKind, RunStatus, TaskRun, TaskStatus
from orchestrator.engine import (
    CancelRun,
    Event,
    Plan,
    Reconcile,
    RunState,
    Transition,
    fanin_counter,
    grown,
    run_counter,
    whole_run,
)
from orchestrator.errors import BadInputError, NotFoundError
from orchestrator.ports import Commit, Snapshot
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.control._outbox import entry, execute, hook_entries

S = TaskStatus


def advance_whole(rt: Runtime, run_id: str, event: Event) -> Transition:
    """Apply `event` to the whole run; retried on write conflicts."""
    rt.forget(run_id)  # it may change the run: this instance reads it afresh next time
    tr, effects = retried(lambda: _apply(rt, run_id, event), what=f"run {run_id}")
    effects()
    return tr


def _apply(rt: Runtime, run_id: str, event: Event) -> tuple[Transition, Callable[[], None]]:
    """Read the whole run, apply `event`, commit: (the transition, the effects to do after)."""
    snap = rt.state.load(run_id)
    if snap is None:
        raise NotFoundError(f"no run {run_id!r}")
    plan = grown(rt.plan_of(snap.run), snap.tasks)
    key = getattr(event, "key", None)
    if key is not None and key not in plan.tasks:
        raise BadInputError(f"run {run_id!r} has no task {key!r}")
    now = rt.clock.now()
    tr = whole_run(plan, RunState(snap.run, snap.tasks), _armed(event, snap), now)
    run = tr.state.run
    if run.status is RunStatus.SUCCEEDED and tr.run_changed:
        uri = rt.flow_result_uri(plan, run_id, run.parent)
        run = run.model_copy(update={"result_uri": uri})
    entries = [entry(run_id, c, now) for c in tr.commands]
    changed = [(snap.tasks.get(k), tr.state.tasks[k]) for k in tr.changed]
    entries += hook_entries(plan, snap.run, changed, now)  # ended in the attempt read
    if not (tr.changed or tr.run_changed or entries):

        def again() -> None:
            # A no-op may be the redelivery of an event whose handler died after committing:
            # do its effects again, a cancel cascade that died part way included.
            undone, delivered = _undelivered(snap)
            execute(rt, plan, run, undone, now, delivered)
            if isinstance(event, CancelRun | Reconcile) and run.status.terminal:
                _cancel_children(rt, run_id, list(snap.tasks.values()))

        return tr, again
    rt.state.commit(
        Commit(
            run_id=run_id,
            run=run if tr.run_changed else None,
            run_etag=snap.run_etag,
            tasks=[(tr.state.tasks[k], snap.etags.get(k)) for k in tr.changed],
            outbox_add=entries,
            increments=_next_attempt_targets(plan, snap, tr),
        )
    )

    def effects() -> None:
        if rt.fault is not None:
            rt.fault("after-commit")
        execute(rt, plan, run, entries, now)
        _cancel_children(rt, run_id, [tr.state.tasks[k] for k in tr.changed])

    return tr, effects


def _armed(event: Event, snap: Snapshot) -> Event:
    """A Reconcile learns which dispatches the run's outbox holds (read with the run)."""
    if not isinstance(event, Reconcile) or event.armed is not None:
        return event
    held = {(e.key, e.attempt) for e in snap.outbox if e.kind is OutboxKind.DISPATCH and e.key}
    return Reconcile(armed=frozenset((k, a) for k, a in held if a is not None))


def _cancel_children(rt: Runtime, run_id: str, tasks: list[TaskRun]) -> None:
    """Subflow runs of cancelled nodes are cancelled too, each at every depth. Repeatable: a
    cancel delivered again to the ended parent finishes a cascade that died part way."""
    for task in tasks:
        if task.child_run and task.status is TaskStatus.CANCELLED:
            with contextlib.suppress(NotFoundError):  # named at its claim, never started
                advance_whole(rt, task.child_run, CancelRun(f"its parent run {run_id} ended"))


def _next_attempt_targets(plan: Plan, snap: Snapshot, tr: Transition) -> dict[str, dict[str, int]]:
    """A flow retry: counters of the new attempt wait only for what runs again. A whole task
    arrives as `done`; a run-time map's child as one of `more`, unless its map runs again too
    (the map's own arrival then brings its children's count)."""
    attempt = tr.state.run.attempt
    if attempt == snap.run.attempt:
        return {}
    tasks = tr.state.tasks
    again = {
        k for k in plan.tasks if tasks.get(k) is None or tasks[k].status is not TaskStatus.SUCCEEDED
    }

    def target(keys: set[str]) -> dict[str, int]:
        kids = {k for k in keys if plan.map_of(k) is not None}
        more = {k for k in kids if plan.map_of(k) not in again}
        return {"need": len(keys - kids), "more": len(more)}

    static_leaves = {k for k in plan.leaves if plan.map_of(k) is None}
    leaf_kids = {k for k in again if plan.map_of(k) is not None and plan.is_leaf(k)}
    out = {run_counter(attempt): target((again & static_leaves) | leaf_kids)}
    for key in again:
        if tasks.get(key) is not None and tasks[key].status is TaskStatus.PENDING:
            waiting = {p for p in plan.tasks[key].parents if p in again}
            if waiting:
                out[fanin_counter(attempt, key)] = target(waiting)
    return out


def _undelivered(snap: Snapshot) -> tuple[list[OutboxEntry], list[str]]:
    """Entries a handler committed but did not do (it died), to do now; and the ids of those
    delivered already (a dispatch whose attempt a worker claimed), whose records are left."""
    out: list[OutboxEntry] = []
    delivered: list[str] = []
    for e in snap.outbox:
        if e.timer:
            continue  # the sweep fires timers when due
        task = snap.tasks.get(e.key or "")
        claimed = (
            e.kind is OutboxKind.DISPATCH
            and task is not None
            and (
                task.attempt != e.attempt
                or task.status not in (TaskStatus.QUEUED, TaskStatus.SCHEDULED)
            )
        )
        if claimed:
            delivered.append(e.id)
        else:
            out.append(e)
    return out, delivered
