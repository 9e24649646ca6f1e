"""The sweeper: timers that came due, effects a crashed handler left, attempts whose worker
stopped renewing its lease. Production ticks it from Cloud Scheduler (every minute); locally the
stack's scheduler ticks it every 0.5 s. Where a timer queue is configured, each timer also has
a push of its own at its due time (`fire_timer`, a Cloud Task): the tick is then the rescue path
for a push that never came.

No single item can hold the sweeper. Every item runs on its own, in a worker thread, with its
own deadline (ITEM_BUDGET_S) well inside the tick's budget: one that raises or outlives its
deadline (a deferred check whose API call retries for minutes) is backed off on its entry, so
the tick goes on to the next item and page and the next tick does not take it again before its
backoff. After MAX_FAILURES, an item is quarantined: a dead letter records it once (`kumoflow
dlq list`) and the item stays, tried again every QUARANTINE_RETRY (never deleted: a run may need
it; the run's hourly whole-run check re-arms a dispatch that is missing all the same).

A tick pages through everything due, oldest first, until its time budget is spent; the next
tick goes on from the oldest again.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Protocol, TypeVar

from orchestrator.contracts import (
    DeadLetter,
    OutboxEntry,
    OutboxKind,
    TaskRun,
    TaskStatus,
    TimerDue,
    clip,
)
from orchestrator.engine import REDISPATCH_AFTER, LeaseExpired, Reconcile, stray
from orchestrator.errors import ConflictError, TransientError
from orchestrator.ports import Commit
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._mailbox import expire_events
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime._slots import reclaim
from orchestrator.runtime.control import advance, close_window, execute, request
from orchestrator.runtime.worker import check, unsure

PAGE = 200
MAX_FAILURES = 5
# A quarantined item is never deleted (a timer a run needs would be lost for good): it is tried
# again this often, so it fires once what broke it is fixed (a Pub/Sub outage ended).
QUARANTINE_RETRY = timedelta(hours=1)
TICK_BUDGET_S = 45.0  # under the sweeper function's 60 s timeout and the tick interval
# One item's own deadline. Items start only while a whole item budget fits in what is left of
# the tick, so a tick ends within TICK_BUDGET_S even when its last item hangs.
ITEM_BUDGET_S = 10.0

# Wait events past their retention are looked for this often (each look lists the mailbox), or
# at the next tick while the last look found a whole page of them.
EVENTS_EVERY = timedelta(minutes=10)
# When this process may look again, per runtime object (by id, with a weak reference that
# tells a live runtime from a later one given the same id: a runtime is not hashable).
_NEXT_EVENTS: dict[int, tuple[weakref.ref[Runtime], datetime]] = {}

T = TypeVar("T")


class TickTime(Protocol):
    """The tick's own time (deadlines), apart from the runtime's clock: tests skip it."""

    def monotonic(self) -> float: ...
    def wait(self, done: threading.Event, until: float) -> bool:
        """Wait until `done` is set (True) or monotonic time reaches `until` (False)."""
        ...


class SystemTime:
    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, done: threading.Event, until: float) -> bool:
        return done.wait(max(0.0, until - time.monotonic()))


SYSTEM_TIME = SystemTime()


class ItemTimedOut(TransientError):
    """A sweeper item outlived its own deadline; it goes on in the background, unwaited for."""


@dataclass
class _Slot:
    done: threading.Event = field(default_factory=threading.Event)
    value: object = None
    error: BaseException | None = None


class _Lane:
    """A worker thread that runs one tick's items one at a time. Python cannot stop a thread:
    an item that outlives its deadline keeps its lane (which ends with it) and the tick goes on
    in a new one. Daemon threads: a hung call never holds the process at exit."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], _Slot] | None]
        self._jobs = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="sweeper-item", daemon=True).start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, slot = job
            try:
                slot.value = fn()
            except BaseException as e:  # handed to the tick, which decides
                slot.error = e
            slot.done.set()

    def submit(self, fn: Callable[[], object]) -> _Slot:
        slot = _Slot()
        self._jobs.put((fn, slot))
        return slot

    def close(self) -> None:
        self._jobs.put(None)  # ends the thread once its current item ends


class _Tick:
    """One tick: its deadline, its time source and the lane its items run in."""

    def __init__(self, rt: Runtime, budget_s: float, item_s: float, clock: TickTime) -> None:
        self.rt = rt
        self.time = clock
        self.item_s = item_s
        self.deadline = clock.monotonic() + budget_s
        self._lane: _Lane | None = None

    @property
    def open(self) -> bool:
        """Another item may start: its whole budget fits in what is left of the tick."""
        return self.time.monotonic() + self.item_s <= self.deadline

    def run(self, what: str, fn: Callable[[], T]) -> T:
        """Run one item within its own deadline: what it returned; raises what it raised, or
        ItemTimedOut."""
        if self._lane is None:
            self._lane = _Lane()
        slot = self._lane.submit(fn)
        if not self.time.wait(slot.done, self.time.monotonic() + self.item_s):
            self._lane.close()
            self._lane = None
            raise ItemTimedOut(f"{what} outlived its {self.item_s:g} s deadline")
        if slot.error is not None:
            raise slot.error
        return slot.value  # type: ignore[return-value]

    def close(self) -> None:
        if self._lane is not None:
            self._lane.close()
            self._lane = None


def tick(
    rt: Runtime,
    *,
    budget_s: float = TICK_BUDGET_S,
    item_s: float = ITEM_BUDGET_S,
    clock: TickTime = SYSTEM_TIME,
) -> int:
    """One sweeper tick; returns how many items it handled."""
    tk = _Tick(rt, budget_s, min(item_s, budget_s), clock)
    try:
        return sweep(tk) + expire_leases(tk) + redispatch(tk) + reclaim_slots(tk) + old_events(tk)
    finally:
        tk.close()


def sweep(tk: _Tick) -> int:
    rt = tk.rt
    handled = 0
    now = rt.clock.now()
    after: OutboxEntry | None = None
    while tk.open:
        page = rt.timers.due(now, PAGE, after)
        for item in page:
            if not tk.open:
                return handled
            _fire(tk, item)
            handled += 1
        if len(page) < PAGE:
            break
        after = page[-1]
    return handled


def _fire(tk: _Tick, item: OutboxEntry) -> None:
    try:
        tk.run(f"sweeper item {item.id} of run {item.run_id}", partial(_do, tk.rt, item))
    except Exception as e:  # one broken or hung item must not stop the ones behind it
        _failed(tk.rt, item, e)


def _do(rt: Runtime, item: OutboxEntry) -> None:
    if item.kind is OutboxKind.CHECK:
        check(rt, item)  # a deferred attempt's work (a BigQuery job, a Cloud Run execution)
        return
    if item.kind is OutboxKind.WINDOW:
        close_window(rt, item)  # a trigger window (debounce=, batch=) that may be due
        return
    if item.kind is OutboxKind.WAKE:
        advance(rt, item.run_id, Reconcile())  # a run timeout: the whole-run path
        rt.state.commit(Commit(run_id=item.run_id, outbox_done=[item.id]))
        return
    snap = rt.state.load(item.run_id, [])
    if snap is None:
        return
    plan = rt.plan_of(snap.run)
    execute(rt, plan, snap.run, [item], rt.clock.now())  # due: timer or abandoned


class Fired(StrEnum):
    """What a timer's own push (a Cloud Task) did."""

    FIRED = "fired"  # fired now, as the tick would have
    GONE = "gone"  # fired already (by the tick, or a push delivered twice): nothing to do
    MOVED = "moved"  # re-armed for a later time since (a backoff): its own push fires it then
    EARLY = "early"  # this push came more than EARLY_WAIT before its time: answer "later"
    FAILED = "failed"  # firing raised: backed off on the entry, as the tick does


# A push a little early (clocks differ by milliseconds) waits for the due time rather than
# bouncing; one far too early is answered non-2xx, so the queue delivers it again later.
EARLY_WAIT = timedelta(seconds=1)


def fire_timer(rt: Runtime, due: TimerDue) -> Fired:
    """Fire the one outbox entry a timer push names, through the code the tick uses (`_do`),
    read from the store (the push only names it). Idempotent: a second push finds it gone."""
    item = rt.timers.entry(due.run_id, due.entry_id)
    if item is None:
        return Fired.GONE
    early = item.due_at - rt.clock.now()
    if early > EARLY_WAIT:
        return Fired.MOVED if item.due_at != due.due_at else Fired.EARLY
    if early > timedelta(0):
        rt.clock.sleep(early.total_seconds())
    try:
        _do(rt, item)
    except Exception as e:  # as a tick's item: backed off (and so re-armed), never lost
        _failed(rt, item, e)
        return Fired.FAILED
    return Fired.FIRED


def _failed(rt: Runtime, item: OutboxEntry, error: Exception) -> None:
    failures = item.failures + 1
    reason = clip(f"{type(error).__name__}: {error}", 2000)
    LOGGER.error(
        "sweeper item %s of run %s failed (%d times; quarantined from %d): %s",
        item.id,
        item.run_id,
        failures,
        MAX_FAILURES,
        reason,
        extra={"run_id": item.run_id, "function": "sweeper"},
    )
    try:
        later = rt.clock.now() + timedelta(seconds=min(600, 5 * 2**failures))
        if item.kind is OutboxKind.CHECK and unsure(rt, item, failures, later, reason):
            return  # its attempt stays parked: OUTAGE_BUDGET bounds it, not quarantine
        if failures >= MAX_FAILURES:
            _quarantine(rt, item, failures, reason)
            later = rt.clock.now() + QUARANTINE_RETRY
        rt.state.commit(
            Commit(
                run_id=item.run_id,
                outbox_add=[item.model_copy(update={"failures": failures, "due_at": later})],
            )
        )
    except Exception:  # the store itself is down: the next tick sees the item again
        LOGGER.exception("could not record the failure of sweeper item %s", item.id)


def _quarantine(rt: Runtime, item: OutboxEntry, failures: int, reason: str) -> None:
    """Record a dead letter for an item that keeps failing, once: the item itself stays (a run
    may need it: a retry timer, its hourly check) and is tried again every QUARANTINE_RETRY."""
    letter_id = hashlib.sha256(f"sweeper|{item.run_id}|{item.id}".encode()).hexdigest()[:32]
    if rt.letters.get(letter_id) is not None:
        return  # quarantined before (and re-armed since, or still failing hourly)
    rt.letters.record(
        DeadLetter(
            id=letter_id,
            received_at=rt.clock.now(),
            source="sweeper",
            reason=(
                f"quarantined after {failures} failures (kept, tried again every "
                f"{QUARANTINE_RETRY}): {reason}"
            ),
            event_type=f"outbox.{item.kind}",
            event_id=f"{item.run_id}/{item.id}",
            payload=item.model_dump_json(),
        )
    )


def expire_leases(tk: _Tick) -> int:
    """Fail attempts whose worker stopped renewing (died, or outlived its function): the retry
    policy then decides on a new attempt, exactly as for any failed attempt. Pages past what
    does not progress (a cursor), so no set of stuck records can hold up the rest."""
    rt = tk.rt
    # A grace of one more lease: a report may be queued behind a busy orchestrator.
    cutoff = rt.clock.now() - timedelta(seconds=rt.lease_seconds)
    return _page(tk, "lease expiry", partial(rt.timers.expired_leases, cutoff), _expire)


def redispatch(tk: _Tick) -> int:
    """Request again attempts queued long ago and never claimed (their dispatch may be lost),
    and move their next check on; the claim dedupes a request that was only slow."""
    rt = tk.rt
    return _page(tk, "re-dispatch", partial(rt.timers.stale_dispatches, rt.clock.now()), _again)


def reclaim_slots(tk: _Tick) -> int:
    """Concurrency slots whose lease ran out: renewed while their attempt runs, freed (and
    handed to the next waiter) once it is over, so a crashed worker's slot comes back within
    one lease and no operator ever frees one."""
    rt = tk.rt
    if rt.limits is None:
        return 0
    handled = 0
    for slot in rt.limits.expired_slots(rt.clock.now(), PAGE):
        if not tk.open:
            break
        try:
            handled += tk.run(f"slot {slot.index} of {slot.key}", partial(reclaim, rt, slot))
        except Exception:  # the store or the bus is away: the next tick tries again
            LOGGER.exception("reclaiming slot %d of %s failed", slot.index, slot.key)
    return handled


def old_events(tk: _Tick) -> int:
    """Wait events no live run can take any more, past retention: a page at a time (see
    runtime/_mailbox.py). A failure is logged; the next look tries again."""
    rt, now = tk.rt, tk.rt.clock.now()
    ref, due = _NEXT_EVENTS.get(id(rt), (None, None))
    if (ref is not None and ref() is rt and due is not None and now < due) or not tk.open:
        return 0
    _NEXT_EVENTS[id(rt)] = (weakref.ref(rt), now + EVENTS_EVERY)
    try:
        expired = tk.run("expiring wait events", partial(expire_events, rt, now))
    except Exception:  # the store or GCS is away: look again at the next interval
        LOGGER.exception("expiring wait events failed")
        return 0
    if expired.more:
        _NEXT_EVENTS[id(rt)] = (weakref.ref(rt), now)  # the next tick goes on
    return expired.deleted


def _page(
    tk: _Tick,
    what: str,
    query: Callable[[int, TaskRun | None], list[TaskRun]],
    handle: Callable[[Runtime, TaskRun], bool],
) -> int:
    """Each task `query` finds, oldest first, page after page, handled on its own."""
    handled = 0
    after: TaskRun | None = None
    while tk.open:
        page = query(PAGE, after)
        for task in page:
            if not tk.open:
                return handled
            try:
                handled += tk.run(
                    f"{what} of {task.key} in run {task.run_id}", partial(handle, tk.rt, task)
                )
            except ConflictError:
                continue  # the record moved since we read it (claimed, renewed): nothing to do
            except Exception:  # the store or the bus is away: the next tick tries again
                LOGGER.exception("%s of %s in run %s failed", what, task.key, task.run_id)
        if len(page) < PAGE:
            break
        after = page[-1]
    return handled


def _expire(rt: Runtime, task: TaskRun) -> bool:
    last = task.attempts[-1] if task.attempts else None
    if last is not None and last.token is not None:
        expired = LeaseExpired(task.key, task.attempt, last.token)
        if advance(rt, task.run_id, expired):
            return True
    return _clear_stray(rt, task)


def _again(rt: Runtime, task: TaskRun) -> bool:
    snap = rt.state.load(task.run_id, [task.key])
    current = snap.tasks.get(task.key) if snap else None
    if snap is None or current is None:
        return False
    if current.status is not TaskStatus.QUEUED or snap.run.status.terminal:
        return _clear_stray(rt, task)
    later = rt.clock.now() + REDISPATCH_AFTER
    rt.state.commit(
        Commit(
            run_id=task.run_id,
            tasks=[(current.model_copy(update={"redispatch_at": later}), snap.etags[task.key])],
        )
    )
    request(rt, snap.run, [(task.key, current.attempt)], why="/again")
    return True


def _clear_stray(rt: Runtime, task: TaskRun) -> bool:
    """A lease or re-dispatch time nothing will act on (a task of an ended run, an attempt
    over): cleared by the engine's rule, so the queries stop returning it."""
    snap = rt.state.load(task.run_id, [task.key])
    current = snap.tasks.get(task.key) if snap else None
    if snap is None or current is None:
        return False
    cleared = stray(snap.run, current)
    if cleared is None:
        return False
    rt.state.commit(Commit(run_id=task.run_id, tasks=[(cleared, snap.etags[task.key])]))
    LOGGER.info(
        "cleared the stray lease/re-dispatch of %s in run %s (%s)",
        task.key,
        task.run_id,
        snap.run.status.value,
        extra={"run_id": task.run_id, "function": "sweeper"},
    )
    return True
