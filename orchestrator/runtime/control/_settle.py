"""Advancing a run one completion at a time, at any width.

Per event: read the run and the one task (a batch get), apply the completion, and commit the
task with its counter arrivals; the commit returns the counters' new values. Children whose
fan-in counter reached its target are decided (queued or skipped) in chunks, and the run is
finished by the one commit that brings its counter to the number of leaves. Reads and writes
are O(the task's degree); a redelivered event (the handler died after committing) re-reads the
same counters and completes whatever its first delivery left undone, idempotently: children are
created must-not-exist, dispatches of still-queued children are sent again, shard roll-ups are
guarded by markers, finishes are conditional on the run document.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.contracts import (
    OutboxEntry,
    Run,
    RunStatus,
    TaskFailed,
    TaskRun,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine import (
    FinishRun,
    LeaseExpired,
    Plan,
    Reconcile,
    Verdict,
    arrive,
    blocks,
    complete,
    decide,
    expanded,
    fanin_counter,
    grew,
    growing,
    is_growing,
    merge,
    queued,
    returns_tolerated,
    rollup,
    run_counter,
    run_done,
    skipped,
    waiting,
)
from orchestrator.errors import BadInputError, ConflictError, NotFoundError, TransientError
from orchestrator.ports import Commit, Counts, Etag
from orchestrator.runtime._completion import child_ended, stored
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.control._outbox import CHUNK, entry, execute, request
from orchestrator.runtime.control._start import begin
from orchestrator.runtime.control._whole import advance_whole


class GrowthPaused(TransientError):
    """A run-time map grew by its budget in this delivery; redelivery carries on."""


Completion = TaskSucceeded | TaskFailed | LeaseExpired


@dataclass
class Ctx:
    rt: Runtime
    plan: Plan
    run: Run
    run_etag: Etag


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
    now = rt.clock.now()
    step = complete(plan, snap.run, task, event, now)
    if step.task is None:
        if task.status.terminal and task.attempt == event.attempt:
            return False, lambda: recover(ctx, task)  # a redelivery: finish what a crash left
        return False, _nothing
    entries = [entry(run_id, c, now) for c in step.commands]
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
        execute(rt, plan, snap.run, entries, now)
        if step.increments:
            follow_up(ctx, [ended], counts)

    return True, effects


def _nothing() -> None:
    pass


def _current(ctx: Ctx) -> bool:
    """Read the run afresh (a recovery, a finish that lost a race): True while it still runs
    the same flow attempt."""
    attempt = ctx.run.attempt
    snap = ctx.rt.state.load(ctx.run.run_id, [])
    ctx.rt.remember(ctx.run.run_id, snap)
    if snap is None:
        return False
    ctx.run, ctx.run_etag = snap.run, snap.run_etag
    return snap.run.status is RunStatus.RUNNING and snap.run.attempt == attempt


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


def follow_up(ctx: Ctx, ended: Sequence[TaskRun], counts: Counts) -> None:
    """Decide what the tasks that just `ended` (in a commit that returned `counts`) unblock."""
    work: list[tuple[Sequence[TaskRun], Counts]] = [(ended, counts)]
    while work:
        batch, seen = work.pop()
        seen = _roll_up(ctx, seen)
        mine = seen.get(run_counter(ctx.run.attempt))
        if mine is not None and run_done(ctx.plan, mine, ctx.run.attempt):
            finish(ctx, failed=mine.get("bad", 0))
        ready: dict[str, Verdict] = {}
        for task in batch:
            for child in ctx.plan.children[task.key]:
                fanin = seen.get(fanin_counter(ctx.run.attempt, child), {})
                verdict = decide(ctx.plan, child, fanin, ctx.run.attempt)
                if verdict is not None:
                    ready[child] = verdict
        for key in [k for k, v in ready.items() if v is Verdict.QUEUE and k in ctx.plan.dynamic]:
            del ready[key]
            width = seen.get(fanin_counter(ctx.run.attempt, key), {}).get("width", 0)
            grown, more = grow_map(ctx, key, width)
            work.append((grown, more))
        items = list(ready.items())
        for i in range(0, len(items), CHUNK):
            skipped_now, more = decide_chunk(ctx, items[i : i + CHUNK])
            if skipped_now:
                work.append((skipped_now, more))


def grow_map(ctx: Ctx, key: str, width: int) -> tuple[list[TaskRun], Counts]:
    """Run-time map `key` is ready: record that it grows (with a cursor), create its `width`
    children (queued and dispatched) in chunks that each move the cursor, then end its record,
    whose arrival makes its consumers wait for them.

    The map is visible before any child exists, so a cancel, a resume and the rescues see it
    grow; each chunk is conditional on the map's record, so nothing grows after a cancel.
    Repeatable: a redelivery carries on from the cursor (re-sending the last chunk's
    dispatches, which a crash may have lost). A delivery grows at most `rt.grow_chunks` chunks, then
    asks for redelivery (GrowthPaused), so growth never outlives a function's timeout."""
    rt, plan, run = ctx.rt, ctx.plan, ctx.run
    found, etags = rt.state.tasks(run.run_id, [key])
    record, etag = found.get(key), etags.get(key)
    if record is None or record.status is TaskStatus.PENDING:  # PENDING: a resume re-pended it
        ended = expanded(run, plan, key, width, rt.max_map_width)
        if ended.status is TaskStatus.FAILED:  # it cannot grow (not a list, ...): ends at once
            return _end_map(ctx, ended, etag)
        start = growing(run, plan, key, width, record)
        with contextlib.suppress(ConflictError):  # another delivery began it: carry on (below)
            rt.state.commit(Commit(run_id=run.run_id, tasks=[(start, etag)]))
        found, etags = rt.state.tasks(run.run_id, [key])
        record, etag = found.get(key), etags.get(key)
        resend = False
    else:
        resend = True
    if record is None or not is_growing(record):
        return [], {}  # grown, cancelled or failed meanwhile: whoever did it carried on
    if resend and record.grown:
        lo = max(0, (record.grown or 0) - CHUNK)
        request(rt, run, _still_queued(ctx, [f"{key}[{i}]" for i in range(lo, record.grown)]))
    for _ in range(rt.grow_chunks):
        if (record.grown or 0) >= width:
            return _end_map(ctx, grew(record, width, done=True), etag)
        moved = _grow_chunk(ctx, record, etag)
        if moved is None:
            return [], {}  # cancelled (or ended) meanwhile: no child after that
        record, etag = moved
    if (record.grown or 0) >= width:
        return _end_map(ctx, grew(record, width, done=True), etag)
    raise GrowthPaused(
        f"run {run.run_id}: run-time map {key!r} grew {record.grown} of {width} children; "
        "it goes on when this event is delivered again"
    )


def _grow_chunk(ctx: Ctx, record: TaskRun, etag: Etag | None) -> tuple[TaskRun, Etag] | None:
    """Create the next CHUNK children of growing map `record` with its cursor, in one commit
    conditional on the map's record; None once the map no longer grows. A child an earlier
    flow attempt kept (it succeeded) arrives again, so the new attempt's counters count it."""
    rt, plan, run = ctx.rt, ctx.plan, ctx.run
    key, width = record.key, record.width or 0
    growth = (record, etag)

    def attempt() -> tuple[TaskRun, Etag] | None:
        nonlocal growth
        record, etag = growth
        lo = record.grown or 0
        hi = min(width, lo + CHUNK)
        keys = [f"{key}[{i}]" for i in range(lo, hi)]
        current, child_etags = rt.state.tasks(run.run_id, keys) if run.attempt > 1 else ({}, {})
        now = rt.clock.now()
        records: list[tuple[TaskRun, Etag | None]] = []
        dispatches: list[tuple[str, int]] = []
        increments: dict[str, dict[str, int]] = {}
        for child in keys:
            existing = current.get(child)
            if existing is not None and existing.status is TaskStatus.SUCCEEDED:
                merge(increments, arrive(plan, run, existing))
                continue
            made, dispatch = queued(run, plan, child, existing, now)
            records.append((made.model_copy(update={"width": width}), child_etags.get(child)))
            dispatches.append((child, dispatch.attempt))
        try:
            rt.state.commit(
                Commit(
                    run_id=run.run_id,
                    tasks=[(grew(record, hi), etag), *records],
                    increments=increments,
                )
            )
        except ConflictError:
            fresh = _growing(ctx, key)
            if fresh is None:
                return None
            growth = fresh
            raise
        if dispatches:
            request(rt, run, dispatches)
        return _growing(ctx, key)

    return retried(attempt, what=f"run {run.run_id}: growing {key!r}")


def _growing(ctx: Ctx, key: str) -> tuple[TaskRun, Etag] | None:
    """Map `key`'s record and etag while it grows; None once it does not."""
    found, etags = ctx.rt.state.tasks(ctx.run.run_id, [key])
    fresh = found.get(key)
    return None if fresh is None or not is_growing(fresh) else (fresh, etags[key])


def _still_queued(ctx: Ctx, keys: list[str]) -> list[tuple[str, int]]:
    current, _ = ctx.rt.state.tasks(ctx.run.run_id, keys)
    return [(k, t.attempt) for k, t in current.items() if t.status is TaskStatus.QUEUED]


def _end_map(ctx: Ctx, record: TaskRun, etag: Etag | None) -> tuple[list[TaskRun], Counts]:
    """The map's record ends (grown, or failed to grow) and arrives at its consumers."""
    try:
        counts = ctx.rt.state.commit(
            Commit(
                run_id=ctx.run.run_id,
                tasks=[(record, etag)],
                increments=arrive(ctx.plan, ctx.run, record),
            )
        )
    except ConflictError:
        return [], {}  # ended by another delivery (or cancelled), which carries on from it
    return [record], counts


def _roll_up(ctx: Ctx, seen: Counts) -> Counts:
    """Counts with the top counters of every shard these counts complete: each completed shard
    is added to its top counter exactly once (a create-only marker); a writer that finds the
    marker taken reads the top counter instead."""
    out = dict(seen)
    for name, counts in seen.items():
        step = rollup(ctx.plan, name, counts)
        if step is None:
            continue
        try:
            out.update(
                ctx.rt.state.commit(
                    Commit(
                        run_id=ctx.run.run_id,
                        markers=[step.shard],
                        increments={step.top: step.increment},
                    )
                )
            )
        except ConflictError:
            out.update(ctx.rt.state.counters(ctx.run.run_id, [step.top]))
    return out


def decide_chunk(ctx: Ctx, chunk: list[tuple[str, Verdict]]) -> tuple[list[TaskRun], Counts]:
    """Create (queue or skip) the children of `chunk`; returns the skipped ones with the counts
    their arrivals produced. Children someone else created first are left to that writer,
    except a dispatch, which is sent again (the other writer may have died before sending)."""
    rt, plan, run = ctx.rt, ctx.plan, ctx.run
    keys = [k for k, _ in chunk]
    current: Mapping[str, TaskRun] = {}
    etags: Mapping[str, Etag] = {}
    if run.attempt > 1:  # a flow retry re-pended these records: update them, do not create
        snap = rt.state.load(run.run_id, keys)
        current, etags = (snap.tasks, snap.etags) if snap else ({}, {})
    uppers = _parents(ctx, [k for k, verdict in chunk if verdict is Verdict.SKIP])

    def attempt() -> tuple[list[TaskRun], Counts]:
        nonlocal current, etags
        now = rt.clock.now()
        records: list[tuple[TaskRun, Etag | None]] = []
        dispatches: list[tuple[str, int]] = []
        increments: dict[str, dict[str, int]] = {}
        ended: list[TaskRun] = []
        for key, verdict in chunk:
            existing = current.get(key)
            if existing is not None and existing.status is not TaskStatus.PENDING:
                continue  # decided already
            if verdict is Verdict.QUEUE:
                record, dispatch = queued(run, plan, key, existing, now)
                dispatches.append((key, dispatch.attempt))
            else:
                parents = [uppers[p] for p in plan.tasks[key].parents if p in uppers]
                record = skipped(run, plan, key, existing, parents)
                merge(increments, arrive(plan, run, record))
                ended.append(record)
            records.append((record, etags.get(key)))
        if not records:
            return [], {}
        try:
            counts = rt.state.commit(
                Commit(run_id=run.run_id, tasks=records, increments=increments)
            )
        except ConflictError:
            snap = rt.state.load(run.run_id, keys)  # someone decided some: keep the rest
            current, etags = (snap.tasks, snap.etags) if snap else ({}, {})
            resend = [(k, t.attempt) for k, t in current.items() if t.status is TaskStatus.QUEUED]
            if resend:
                request(rt, run, resend)
            raise
        if dispatches:
            request(rt, run, dispatches)
        return ended, counts

    return retried(attempt, what=f"run {run.run_id}: deciding {len(chunk)} task(s)")


def _parents(ctx: Ctx, keys: list[str]) -> Mapping[str, TaskRun]:
    """The records of the skipped tasks' parents, to name why: one read for the whole chunk
    (a rare path, O(the chunk's in-degree))."""
    wanted = list(dict.fromkeys(p for k in keys for p in ctx.plan.tasks[k].parents))
    if not wanted:
        return {}
    snap = ctx.rt.state.load(ctx.run.run_id, wanted)
    return snap.tasks if snap is not None else {}


def finish(ctx: Ctx, *, failed: int) -> None:
    """Every task ended: the run succeeds here, or a failure is settled by the whole-run
    engine (flow retries, the first failure's error): once per run, so O(run) is fine there."""
    rt, plan = ctx.rt, ctx.plan

    def attempt() -> None:
        run = ctx.run
        if run.status.terminal:
            return
        if failed or returns_tolerated(plan):
            advance_whole(rt, run.run_id, Reconcile())  # the rare O(run) path
            return
        now = rt.clock.now()
        done = run.model_copy(
            update={
                "status": RunStatus.SUCCEEDED,
                "ended_at": now,
                "result_uri": rt.flow_result_uri(plan, run.run_id, run.parent),
            }
        )
        entries: list[OutboxEntry] = [
            entry(run.run_id, FinishRun(RunStatus.SUCCEEDED, None, run.attempt), now)
        ]
        try:
            rt.state.commit(
                Commit(run_id=run.run_id, run=done, run_etag=ctx.run_etag, outbox_add=entries)
            )
        except ConflictError:
            if _current(ctx) or ctx.run.status.terminal:
                raise  # again, from the top: a terminal run is left as it is
            return  # a flow retry began: its own counters finish it
        rt.runs.pop(run.run_id)
        execute(rt, plan, done, entries, now)
        ctx.run = done

    retried(attempt, what=f"run {ctx.run.run_id}: finishing")


def recover(ctx: Ctx, task: TaskRun) -> None:
    """Re-derive, from counters read now, what `task` ending should have caused: children to
    create, dispatches to resend, a finish. Runs on every redelivery of an applied event."""
    if not _current(ctx):
        return
    pending = [task]
    seen: set[str] = set()
    while pending:
        task = pending.pop()
        if task.key in seen:
            continue
        seen.add(task.key)
        children = ctx.plan.children[task.key]
        names = list(arrive(ctx.plan, ctx.run, task))
        counts = ctx.rt.state.counters(ctx.run.run_id, names)
        follow_up(ctx, [task], counts)
        # Children skipped earlier (before a crash) carry the cascade on: follow them too.
        snap = ctx.rt.state.load(ctx.run.run_id, children) if children else None
        if snap is not None:  # and grown run-time maps, whose consumers may wait on them
            pending += [
                t
                for t in snap.tasks.values()
                if t.status is TaskStatus.SKIPPED or t.key in ctx.plan.dynamic
            ]


def rescue_maps(rt: Runtime, run_id: str) -> None:
    """The whole-run path leaves run-time maps to this one. After it re-derived a run (the
    hourly recheck, a resume), a map whose parents all ended but that is not grown (its event
    was lost, its growth paused and was not redelivered, or a resume re-pended it) grows from
    the width its producer's record reported, as a redelivery would."""
    head = rt.state.load(run_id, [])
    if head is None or head.run.status is not RunStatus.RUNNING:
        return
    plan = rt.plan_of(head.run)
    for key, source in plan.dynamic.items():
        parents = plan.tasks[key].parents
        snap = rt.state.load(run_id, [key, *parents])
        if snap is None or snap.run.status is not RunStatus.RUNNING:
            return
        record = snap.tasks.get(key)
        if (
            record is not None
            and record.status is not TaskStatus.PENDING
            and not is_growing(record)
        ):
            continue
        ended = [snap.tasks.get(p) for p in parents]
        if not all(t is not None and t.status.terminal for t in ended):
            continue
        ctx = Ctx(rt, plan, snap.run, snap.run_etag)
        producer = snap.tasks[source.task]
        if any(blocks(plan, t, key) for t in ended if t is not None):
            recover(ctx, snap.tasks[parents[0]])  # skipped from the counters, as usual
            continue
        width = producer.width if source.nested else producer.lengths.get(key)
        grown, counts = grow_map(ctx, key, width or 0)
        if grown:
            follow_up(ctx, grown, counts)
