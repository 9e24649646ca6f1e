"""The sweeper: timers that came due, effects a crashed handler left, attempts whose worker
stopped renewing its lease. Production ticks it from Cloud Scheduler (every minute); locally the
stack's scheduler ticks it every 0.5 s.

Every item is handled on its own: one that fails is retried with backoff on later ticks and,
after MAX_FAILURES, quarantined as a dead letter (`kumoflow dlq list`) so it never holds up the
items behind it. A tick pages through everything due, oldest first, until its time budget is
spent; the next tick goes on from the oldest again.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

from orchestrator.contracts import DeadLetter, OutboxEntry, TaskStatus, clip
from orchestrator.engine import REDISPATCH_AFTER, LeaseExpired, Reconcile
from orchestrator.errors import ConflictError
from orchestrator.ports import Commit
from orchestrator.runtime._advance import advance
from orchestrator.runtime._check import check
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._outbox import execute, request
from orchestrator.runtime._runtime import Runtime

PAGE = 200
MAX_FAILURES = 5
TICK_BUDGET_S = 45.0  # under the sweeper function's 60 s timeout and the tick interval


def tick(rt: Runtime, *, budget_s: float = TICK_BUDGET_S) -> int:
    """One sweeper tick; returns how many items it handled."""
    deadline = time.monotonic() + budget_s
    return sweep(rt, deadline) + expire_leases(rt, deadline) + redispatch(rt, deadline)


def sweep(rt: Runtime, deadline: float) -> int:
    handled = 0
    now = rt.clock.now()
    after: OutboxEntry | None = None
    while time.monotonic() < deadline:
        page = rt.timers.due(now, PAGE, after)
        for item in page:
            _fire(rt, item)
            handled += 1
            if time.monotonic() >= deadline:
                return handled
        if len(page) < PAGE:
            break
        after = page[-1]
    return handled


def _fire(rt: Runtime, item: OutboxEntry) -> None:
    try:
        if item.kind == "check":
            check(rt, item)  # a deferred attempt's work (a BigQuery job, a Cloud Run execution)
            return
        if item.kind == "wake":
            advance(rt, item.run_id, Reconcile())  # a run timeout: the whole-run path
            rt.state.commit(Commit(run_id=item.run_id, outbox_done=[item.id]))
            return
        snap = rt.state.load(item.run_id, [])
        if snap is None:
            return
        plan = rt.plan_of(snap.run)
        execute(rt, plan, snap.run, [item], rt.clock.now())  # due: timer or abandoned
    except Exception as e:  # one broken item must not stop the ones behind it
        _failed(rt, item, e)


def _failed(rt: Runtime, item: OutboxEntry, error: Exception) -> None:
    failures = item.failures + 1
    reason = clip(f"{type(error).__name__}: {error}", 2000)
    LOGGER.error(
        "sweeper item %s of run %s failed (%d/%d): %s",
        item.id,
        item.run_id,
        failures,
        MAX_FAILURES,
        reason,
        extra={"run_id": item.run_id, "function": "sweeper"},
    )
    try:
        if failures >= MAX_FAILURES:
            rt.letters.record(
                DeadLetter(
                    id=hashlib.sha256(f"sweeper|{item.run_id}|{item.id}".encode()).hexdigest()[:32],
                    received_at=rt.clock.now(),
                    source="sweeper",
                    reason=f"quarantined after {failures} failures: {reason}",
                    event_type=f"outbox.{item.kind}",
                    event_id=f"{item.run_id}/{item.id}",
                    payload=item.model_dump_json(),
                )
            )
            rt.state.commit(Commit(run_id=item.run_id, outbox_done=[item.id]))
            return
        later = rt.clock.now() + timedelta(seconds=min(600, 5 * 2**failures))
        rt.state.commit(
            Commit(
                run_id=item.run_id,
                outbox_add=[item.model_copy(update={"failures": failures, "due_at": later})],
            )
        )
    except Exception:  # the store itself is down: the next tick sees the item again
        LOGGER.exception("could not record the failure of sweeper item %s", item.id)


def expire_leases(rt: Runtime, deadline: float) -> int:
    """Fail attempts whose worker stopped renewing (died, or outlived its function): the retry
    policy then decides on a new attempt, exactly as for any failed attempt."""
    handled = 0
    while time.monotonic() < deadline:
        # A grace of one more lease: a report may be queued behind a busy orchestrator.
        grace = timedelta(seconds=rt.lease_seconds)
        page = rt.timers.expired_leases(rt.clock.now() - grace, PAGE)
        progressed = False
        for task in page:
            last = task.attempts[-1] if task.attempts else None
            if last is None or last.token is None:
                continue
            try:
                progressed |= advance(
                    rt, task.run_id, LeaseExpired(task.key, task.attempt, last.token)
                )
            except Exception:
                LOGGER.exception("lease expiry of %s in run %s failed", task.key, task.run_id)
            handled += 1
        if len(page) < PAGE or not progressed:
            break
    return handled


def redispatch(rt: Runtime, deadline: float) -> int:
    """Request again attempts queued long ago and never claimed (their dispatch may be lost),
    and move their next check on; the claim dedupes a request that was only slow."""
    handled = 0
    while time.monotonic() < deadline:
        page = rt.timers.stale_dispatches(rt.clock.now(), PAGE)
        for task in page:
            try:
                snap = rt.state.load(task.run_id, [task.key])
                current = snap.tasks.get(task.key) if snap else None
                if snap is None or current is None or current.status is not TaskStatus.QUEUED:
                    continue
                later = rt.clock.now() + REDISPATCH_AFTER
                rt.state.commit(
                    Commit(
                        run_id=task.run_id,
                        tasks=[
                            (
                                current.model_copy(update={"redispatch_at": later}),
                                snap.etags[task.key],
                            )
                        ],
                    )
                )
                request(rt, snap.run, [(task.key, current.attempt)], why="/again")
                handled += 1
            except ConflictError:
                continue  # claimed (or re-dispatched) since we read it: nothing to do
            except Exception:  # the store or the bus is away: the next tick tries again
                LOGGER.exception("re-dispatch of %s in run %s failed", task.key, task.run_id)
        if len(page) < PAGE:
            break
    return handled
