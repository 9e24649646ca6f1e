"""Growing a run-time map: its children exist only once the list it maps over was made.

The map's record grows first (RUNNING, its width, a cursor of children created), so a cancel, a
resume and every rescue see it; its children are created chunk by chunk, each chunk one commit
conditional on the map's record that also moves the cursor, so nothing grows after a cancel and
a redelivery carries on where the last delivery stopped. A delivery grows a bounded number of
chunks (`rt.grow_chunks`), then asks for redelivery, so growth never outlives a function.
"""

from __future__ import annotations

import contextlib

from orchestrator.contracts import TaskRun, TaskStatus
from orchestrator.engine import arrive, expanded, grew, growing, is_growing, merge, queued
from orchestrator.errors import ConflictError, TransientError
from orchestrator.ports import Commit, Counts, Etag
from orchestrator.runtime._retry import retried
from orchestrator.runtime.control._ctx import Ctx
from orchestrator.runtime.control._outbox import CHUNK, request


class GrowthPaused(TransientError):
    """A run-time map grew by its budget in this delivery; redelivery carries on."""


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
