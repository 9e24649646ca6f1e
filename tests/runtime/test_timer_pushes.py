"""Timers' own pushes (Cloud Tasks): armed where a commit adds a timer, fired through the
sweeper's code, and harmless when a push comes twice, early, late or never (the tick rescues)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import timedelta

import pytest
from cloudevents.http import CloudEvent

from orchestrator import flow, functions, task
from orchestrator.adapters import MemoryBus, MemoryStore, MemoryTimerQueue, VirtualClock
from orchestrator.contracts import (
    TIMER_DUE,
    OutboxEntry,
    OutboxKind,
    RunRequested,
    TaskRequested,
    TimerDue,
)
from orchestrator.errors import ConflictError, TransientError
from orchestrator.functions import main
from orchestrator.ports import Commit
from orchestrator.runtime import (
    ArmedState,
    Fired,
    Runtime,
    advance,
    fire_timer,
    memory_runtime,
    run_task,
    start_run,
    tick,
)

FAILS: dict[str, int] = {}


@task(name="fails-once", retries=1, retry_delay_seconds=30)
def fails_once(key: str) -> str:
    FAILS[key] = FAILS.get(key, 0) + 1
    if FAILS[key] == 1:
        raise RuntimeError("first attempt fails")
    return key


@flow(name="retrying-pushed")
def retrying(key: str) -> str:
    return fails_once(key)


@dataclasses.dataclass
class World:
    rt: Runtime
    store: MemoryStore
    bus: MemoryBus
    clock: VirtualClock
    queue: MemoryTimerQueue

    def requests(self) -> list[tuple[str, int]]:
        return [(e.data.key, e.data.attempt) for _, e in self.bus.published if _requested(e.data)]


def _requested(data: object) -> bool:
    return isinstance(data, TaskRequested)


def _world(key: str) -> World:
    store, bus, clock, queue = MemoryStore(), MemoryBus(), VirtualClock(), MemoryTimerQueue()
    bus.record = True
    rt = memory_runtime(clock=clock, functions=retrying.functions(), store=store, bus=bus)
    rt = dataclasses.replace(rt, state=ArmedState(store, queue, clock))
    store.put_flow(retrying.spec)
    FAILS.pop(key, None)
    return World(rt, store, bus, clock, queue)


def _failed_first_attempt(w: World, key: str) -> TimerDue:
    """Run `key`'s first attempt, which fails: its retry is a timer 30 s out, armed."""
    start_run(w.rt, RunRequested(flow="retrying-pushed", params={"key": key}), run_id=key)
    (req,) = [e.data for _, e in w.bus.published if isinstance(e.data, TaskRequested)]
    failed = run_task(w.rt, req)
    assert failed is not None
    advance(w.rt, key, failed)
    (push,) = [p for p in w.queue.pushes() if p.entry_id.startswith("dispatch-")]
    assert push.entry_id == "dispatch-fails-once-2"
    assert push.due_at == w.clock.now() + timedelta(seconds=30)
    w.bus.published.clear()
    return push


def test_a_retry_timer_is_armed_at_commit_and_its_push_fires_it_once() -> None:
    w = _world("a")
    push = _failed_first_attempt(w, "a")
    w.clock.sleep(30)
    assert fire_timer(w.rt, push) is Fired.FIRED
    assert w.requests() == [("fails-once", 2)]
    assert w.store.entry("a", push.entry_id) is None
    # Delivered twice (Cloud Tasks is at-least-once), then the tick: nothing more happens.
    assert fire_timer(w.rt, push) is Fired.GONE
    tick(w.rt)
    assert w.requests() == [("fails-once", 2)]


def test_a_push_that_never_comes_leaves_the_timer_to_the_tick() -> None:
    w = _world("b")
    push = _failed_first_attempt(w, "b")
    w.clock.sleep(29)
    tick(w.rt)
    assert w.requests() == []  # not due yet: the tick leaves it
    w.clock.sleep(1)
    tick(w.rt)
    assert w.requests() == [("fails-once", 2)]
    assert fire_timer(w.rt, push) is Fired.GONE  # the push arriving late after all


def test_an_early_push_is_answered_later_and_a_barely_early_one_waits() -> None:
    w = _world("c")
    push = _failed_first_attempt(w, "c")
    w.clock.sleep(10)
    assert fire_timer(w.rt, push) is Fired.EARLY
    assert w.requests() == []
    assert w.store.entry("c", push.entry_id) is not None
    w.clock.sleep(19.5)  # half a second early: it waits for the due time, then fires
    assert fire_timer(w.rt, push) is Fired.FIRED
    assert w.clock.now() == push.due_at
    assert w.requests() == [("fails-once", 2)]


def test_a_push_for_a_timer_moved_later_leaves_it_to_its_own_push() -> None:
    w = _world("d")
    push = _failed_first_attempt(w, "d")
    entry = w.store.entry("d", push.entry_id)
    assert entry is not None
    later = entry.model_copy(update={"due_at": entry.due_at + timedelta(minutes=5)})
    w.rt.state.commit(Commit(run_id="d", outbox_add=[later]))
    w.clock.sleep(30)
    assert fire_timer(w.rt, push) is Fired.MOVED
    assert w.requests() == []
    moved = TimerDue(run_id="d", entry_id=later.id, due_at=later.due_at)
    assert moved in w.queue.pushes()  # the move armed a push of its own
    w.clock.sleep(300)
    assert fire_timer(w.rt, moved) is Fired.FIRED
    assert w.requests() == [("fails-once", 2)]


class DownBus(MemoryBus):
    def publish_all(self, topic: str, events: Sequence[object]) -> None:  # type: ignore[override]
        raise TransientError("Pub/Sub is away")


def test_a_push_whose_firing_fails_backs_off_and_is_armed_again() -> None:
    w = _world("e")
    push = _failed_first_attempt(w, "e")
    w.clock.sleep(30)
    down = dataclasses.replace(w.rt, bus=DownBus())
    assert fire_timer(down, push) is Fired.FAILED
    entry = w.store.entry("e", push.entry_id)
    assert entry is not None
    assert entry.failures == 1
    assert entry.due_at == w.clock.now() + timedelta(seconds=10)
    again = TimerDue(run_id="e", entry_id=entry.id, due_at=entry.due_at)
    assert again in w.queue.pushes()
    w.clock.sleep(10)
    assert fire_timer(w.rt, again) is Fired.FIRED
    assert w.requests() == [("fails-once", 2)]


def test_only_timers_not_yet_due_and_committed_are_armed() -> None:
    w = _world("f")
    now = w.clock.now()

    def wake(seconds: float, *, timer: bool = True) -> OutboxEntry:
        at = now + timedelta(seconds=seconds)
        return OutboxEntry(
            id=f"w{seconds}", run_id="f", kind=OutboxKind.WAKE, due_at=at, timer=timer
        )

    start_run(w.rt, RunRequested(flow="retrying-pushed", params={"key": "f"}), run_id="f")
    before = set(w.queue.armed)
    entries = [wake(5), wake(0), wake(-5), wake(7, timer=False), wake(40 * 86400)]
    w.rt.state.commit(Commit(run_id="f", outbox_add=entries))
    assert [
        p.entry_id for p in w.queue.pushes() if (p.run_id, p.entry_id, p.due_at) not in before
    ] == ["w5"]
    snap = w.store.load("f")
    assert snap is not None
    stale = Commit(run_id="f", run=snap.run, run_etag="stale", outbox_add=[wake(9)])
    with pytest.raises(ConflictError):
        w.rt.state.commit(stale)
    assert all(p.entry_id != "w9" for p in w.queue.pushes())


class DownQueue:
    def arm(self, entries: Sequence[OutboxEntry]) -> None:
        raise TransientError("Cloud Tasks is away")


def test_a_queue_outage_keeps_the_commit_and_the_tick_fires_the_timer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = _world("g")
    w.rt = dataclasses.replace(w.rt, state=ArmedState(w.store, DownQueue(), w.clock))
    start_run(w.rt, RunRequested(flow="retrying-pushed", params={"key": "g"}), run_id="g")
    (req,) = [e.data for _, e in w.bus.published if isinstance(e.data, TaskRequested)]
    failed = run_task(w.rt, req)
    assert failed is not None
    with caplog.at_level(logging.WARNING, logger="kumoflow"):
        assert advance(w.rt, "g", failed)
    assert "could not arm 1 timer(s) of run g" in caplog.text
    assert w.store.entry("g", "dispatch-fails-once-2") is not None
    w.bus.published.clear()
    w.clock.sleep(30)
    tick(w.rt)
    assert w.requests() == [("fails-once", 2)]


def _push_event(data: bytes) -> CloudEvent:
    return CloudEvent({"type": TIMER_DUE, "source": "//kumoflow.dev/test", "id": "task-1"}, data)


def test_the_sweeper_function_fires_a_pushed_timer_and_dead_letters_a_bad_one() -> None:
    w = _world("h")
    push = _failed_first_attempt(w, "h")
    functions.use_runtime(w.rt)
    try:
        w.clock.sleep(10)
        with pytest.raises(TransientError, match="not due yet"):  # non-2xx: delivered again
            main.sweeper(_push_event(push.model_dump_json().encode()))
        w.clock.sleep(20)
        main.sweeper(_push_event(push.model_dump_json().encode()))
        assert w.requests() == [("fails-once", 2)]
        main.sweeper(_push_event(push.model_dump_json().encode()))  # twice: nothing more
        assert w.requests() == [("fails-once", 2)]
        main.sweeper(_push_event(b'{"run_id": "h"}'))  # acknowledged, recorded
        (letter,) = w.store.list()
        assert letter.source == "sweeper"
        assert letter.event_type == TIMER_DUE
        assert letter.event_id == "task-1"
        assert "entry_id" in letter.reason
    finally:
        functions.use_runtime(None)
