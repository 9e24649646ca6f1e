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

from collections.abc import Mapping, Sequence

from orchestrator.contracts import OutboxEntry, RunStatus, TaskRun, TaskStatus
from orchestrator.engine import (
    FinishRun,
    Reconcile,
    Verdict,
    arrive,
    blocks,
    decide,
    fanin_counter,
    is_growing,
    merge,
    queued,
    returns_tolerated,
    rollup,
    run_counter,
    run_done,
    skipped,
)
from orchestrator.errors import ConflictError
from orchestrator.ports import Commit, Counts, Etag
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.control._ctx import Ctx, current
from orchestrator.runtime.control._grow import grow_map
from orchestrator.runtime.control._outbox import CHUNK, entry, execute, request
from orchestrator.runtime.control._whole import advance_whole


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
            grown, more = grow_map(ctx, key, _width(ctx, key))
            work.append((grown, more))
        items = list(ready.items())
        for i in range(0, len(items), CHUNK):
            skipped_now, more = decide_chunk(ctx, items[i : i + CHUNK])
            if skipped_now:
                work.append((skipped_now, more))


def _width(ctx: Ctx, key: str) -> int:
    """How many children run-time map `key` has: the length its producer's record reported
    (a nested map's: its source map's width). Read from the record, not the counters: after a
    resume, a producer that kept its success does not arrive in the new flow attempt."""
    source = ctx.plan.dynamic[key]
    found, _ = ctx.rt.state.tasks(ctx.run.run_id, [source.task])
    producer = found.get(source.task)
    if producer is None:
        return 0
    width = producer.width if source.nested else producer.lengths.get(key)
    return width or 0


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
            if current(ctx) or ctx.run.status.terminal:
                raise  # again, from the top: a terminal run is left as it is
            return  # a flow retry began: its own counters finish it
        rt.forget(run.run_id)
        execute(rt, plan, done, entries, now)
        ctx.run = done

    retried(attempt, what=f"run {ctx.run.run_id}: finishing")


def recover(ctx: Ctx, task: TaskRun) -> None:
    """Re-derive, from counters read now, what `task` ending should have caused: children to
    create, dispatches to resend, a finish. Runs on every redelivery of an applied event."""
    if not current(ctx):
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
    the width its producer's record reported, as a redelivery would, once its fan-in says
    every parent (a source map's children included) ended."""
    head = rt.state.load(run_id, [])
    if head is None or head.run.status is not RunStatus.RUNNING:
        return
    plan = rt.plan_of(head.run)
    for key in plan.dynamic:
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
        # Its parents' records ended; its fan-in says whether what they stand for ended too (a
        # nested map's source is a map whose record ends once grown, before its children do).
        name = fanin_counter(snap.run.attempt, key)
        counts = rt.state.counters(run_id, [name]).get(name, {})
        if decide(plan, key, counts, snap.run.attempt) is None:
            continue
        ctx = Ctx(rt, plan, snap.run, snap.run_etag)
        if any(blocks(plan, t, key) for t in ended if t is not None):
            recover(ctx, snap.tasks[parents[0]])  # skipped from the counters, as usual
            continue
        grown, counts_after = grow_map(ctx, key, _width(ctx, key))
        if grown:
            follow_up(ctx, grown, counts_after)
