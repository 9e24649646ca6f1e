"""Rate limits around an attempt's claim, beside its concurrency slot (see engine.rates for
the rules, ports.RateStore for where they are kept).

At the claim, in this order:
1. the rate permit, taken at the claim's own time (the attempt's `started_at`, so the starts
   a key's window counts are the starts its attempts record). Over the rate, the attempt is
   not claimed: it stays queued, and one commit conditional on its record moves its
   re-dispatch past the time it may start and adds a timer (an outbox DISPATCH entry, armed
   as a Cloud Task where a queue is configured, else fired by the sweeper's tick) that sends
   its request again then. Nothing waits in a function and nothing polls. An attempt that
   held a concurrency slot (handed to it while it waited in line) gives it on once that
   commit made its claim impossible: no slot is held while waiting for a rate.
2. the concurrency slot (runtime._slots.hold). When it has to wait in line for one, its rate
   permit is handed back: it did not start, and its wake-up takes a permit anew. (Rate first:
   the other order would hold a slot while waiting for the rate.)

A process that dies between the take and the claim's commit leaves its permit counted for a
start that never happened: the key runs slower for one period, never over its rate. (Keeping
the permit for the redelivery instead would let a late claim start on an old permit, which a
window counted at another time: over the rate.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from orchestrator.contracts import (
    OutboxEntry,
    OutboxKind,
    Rate,
    SlotHold,
    TaskOptions,
    TaskRequested,
    TaskRun,
    holder_of,
)
from orchestrator.engine import REDISPATCH_AFTER, Plan
from orchestrator.errors import BadInputError, ConflictError
from orchestrator.ports import Commit, Etag, RateStore
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime._slots import free, hold

RATE_TIMER = "rate-"  # the id prefix of the timers that send a rate-limited request again
# A request of a waiting attempt that comes more than this before its wake-up time (a Pub/Sub
# duplicate) is left to the wake-up's timer. The timer's own request comes after that time by
# the firing instance's clock: only a worker's clock behind it by more than this (Cloud Run's
# clocks agree within milliseconds) would skip it, and then the re-dispatch sends it again.
EARLY = timedelta(milliseconds=250)


def admitted(
    rt: Runtime,
    req: TaskRequested,
    record: TaskRun,
    etag: Etag | None,
    options: TaskOptions,
    now: datetime,
) -> tuple[bool, SlotHold | None]:
    """Whether the attempt may be claimed now: its rate permit taken (at `now`, the claim's
    time), then its concurrency slot (with the slot taken, when the store names it: see
    _slots.hold). False: it waits, queued, for a timer or a freed slot."""
    rate = options.rate
    holder = holder_of(req.run_id, req.key, req.attempt)
    if (
        rate is not None
        and record.next_attempt_at is not None
        and now < record.next_attempt_at - EARLY
    ):
        # Its timer sends it then. Taking (and being refused) again would add a timer per
        # duplicate, each sending one more request: duplicates would multiply.
        return False, None
    if rate is not None:
        store = _store(rt)
        later = retried(
            lambda: store.take_rate(rate, holder, now), what=f"rate {rate.key}: taking a permit"
        )
        if later is not None:
            if _wait_until(rt, req, record, etag, rate, later):
                # Its claim can no longer commit (the record moved): a slot handed to it goes on.
                free(rt, req.run_id, record, req.attempt, options)
            return False, None
    holds, slot = hold(rt, req.run_id, req.key, req.attempt, options)
    if holds:
        return True, slot
    if rate is not None:  # it waits in line for a slot: it did not start
        store = _store(rt)
        retried(
            lambda: store.refund_rate(rate.key, holder, now),
            what=f"rate {rate.key}: handing a permit back",
        )
    return False, None


def _wait_until(
    rt: Runtime, req: TaskRequested, record: TaskRun, etag: Etag | None, rate: Rate, at: datetime
) -> bool:
    """Leave the attempt queued, its request sent again at `at`: a timer in its run's outbox,
    committed with the record (whose sweep re-dispatch moves past it). A conflict: the record
    moved (a duplicate claimed it, a cancel), so nothing of it waits here any more: False."""
    timer = OutboxEntry(
        # One per wait (its time in its id): a refusal again, while the sweep that fired the
        # last one still has it to delete, adds a timer of its own.
        id=f"{RATE_TIMER}{req.key}-{req.attempt}-{at.timestamp():.6f}",
        run_id=req.run_id,
        kind=OutboxKind.DISPATCH,
        due_at=at,
        timer=True,
        key=req.key,
        attempt=req.attempt,
    )
    waiting = record.model_copy(
        update={"next_attempt_at": at, "redispatch_at": at + REDISPATCH_AFTER}
    )
    try:
        rt.state.commit(Commit(run_id=req.run_id, tasks=[(waiting, etag)], outbox_add=[timer]))
    except ConflictError:
        return False
    LOGGER.info(
        "%s attempt %d waits for its rate %s until %s", req.key, req.attempt, rate, at.isoformat(),
        extra={"run_id": req.run_id, "task": req.key, "attempt": req.attempt},
    )  # fmt: skip
    return True


def _store(rt: Runtime) -> RateStore:
    if rt.rates is None:
        raise BadInputError("a task with a rate limit ran on a runtime without rate limits")
    return rt.rates


def rate_waits(outbox: Sequence[OutboxEntry], plan: Plan) -> dict[str, str]:
    """The tasks of a run that wait for a rate permit (read with the run's outbox): task key ->
    "KEY:COUNT/UNIT until T", what `runs show` says of a queued task."""
    out = {}
    for e in outbox:
        planned = plan.tasks.get(e.key or "")
        if e.id.startswith(RATE_TIMER) and planned is not None and planned.node.options.rate:
            out[planned.key] = f"{planned.node.options.rate} until {e.due_at.isoformat()}"
    return out
