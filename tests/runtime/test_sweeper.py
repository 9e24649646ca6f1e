"""The sweeper never stops: each item on its own, a failing item backs off and is quarantined,
and it pages through everything due."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from orchestrator import TransientError, flow, task
from orchestrator.adapters import MemoryBus, MemoryStore, VirtualClock
from orchestrator.contracts import (
    Envelope,
    OutboxEntry,
    RunRequested,
    TaskRequested,
    TaskStatus,
)
from orchestrator.ports import Commit, Snapshot
from orchestrator.runtime import Runtime, advance, memory_runtime, run_task, start_run, tick
from tests.adapters.port_fixtures import make_run

FAILS: dict[str, int] = {}


@task(name="fails-once", retries=1, retry_delay_seconds=30)
def fails_once(key: str) -> str:
    FAILS[key] = FAILS.get(key, 0) + 1
    if FAILS[key] == 1:
        raise RuntimeError("first attempt fails")
    return key


@flow(name="retrying")
def retrying(key: str) -> str:
    return fails_once(key)


@task(name="first")
def first(key: str) -> str:
    return key


@flow(name="then-retrying")
def then_retrying(key: str) -> str:
    return fails_once(first(key))


def _runtime() -> tuple[Runtime, MemoryStore, MemoryBus, VirtualClock]:
    store, bus, clock = MemoryStore(), MemoryBus(), VirtualClock()
    bus.record = True
    functions = {**retrying.functions(), **then_retrying.functions()}
    rt = memory_runtime(clock=clock, functions=functions, store=store, bus=bus)
    store.put_flow(retrying.spec)
    return rt, store, bus, clock


def _run_the_request_again(rt: Runtime, store: MemoryStore, bus: MemoryBus) -> Snapshot:
    """Run the one task request the sweeper sent again; run "r" then ends, succeeded."""
    (again,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    outcome = run_task(rt, again)
    assert outcome is not None
    advance(rt, "r", outcome)
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status.value == "SUCCEEDED"
    return snap


def _poison(store: MemoryStore, clock: VirtualClock, n: int = 1) -> list[OutboxEntry]:
    """Due entries of a run whose flow version nobody registered: they can never fire."""
    run = make_run()
    store.create_run(run)
    entries = [
        OutboxEntry(
            id=f"dispatch-x-{i}",
            run_id=run.run_id,
            kind="dispatch",
            key="x",
            attempt=1,
            due_at=clock.now() - timedelta(minutes=10),
            timer=True,
        )
        for i in range(n)
    ]
    store.commit(Commit(run_id=run.run_id, outbox_add=entries))
    return entries


def test_a_poisoned_entry_does_not_delay_another_runs_retry_timer() -> None:
    rt, store, bus, clock = _runtime()
    poisoned = _poison(store, clock)
    start_run(rt, RunRequested(flow="retrying", params={"key": "a"}), run_id="r")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    failed = run_task(rt, req)
    assert failed is not None
    advance(rt, "r", failed)  # a retry timer 30 s out
    clock.sleep(31)
    bus.published.clear()
    tick(rt)
    retried = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    assert [(r.key, r.attempt) for r in retried] == [("fails-once", 2)]
    # The poisoned entry backed off instead of being retried at the head of every tick.
    (left,) = [e for e in store.due(clock.now() + timedelta(days=1)) if e.id == poisoned[0].id]
    assert left.failures == 1
    assert left.due_at > clock.now()


def test_an_entry_that_keeps_failing_is_quarantined_once_and_kept_for_hourly_tries() -> None:
    rt, store, _bus, clock = _runtime()
    (poisoned,) = _poison(store, clock)
    far = clock.now() + timedelta(days=1)
    for _ in range(5):
        tick(rt)
        clock.sleep(700)  # past the longest backoff
    (letter,) = store.list()
    assert letter.source == "sweeper"
    assert letter.reason.startswith(
        "quarantined after 5 failures (kept, tried again every 1:00:00): NotFoundError"
    )
    assert letter.event_id == f"{poisoned.run_id}/{poisoned.id}"
    (kept,) = [e for e in store.due(far) if e.id == poisoned.id]
    assert kept.failures == 5
    assert kept.due_at == clock.now() - timedelta(seconds=700) + timedelta(hours=1)
    for _ in range(3):
        clock.sleep(3600)
        tick(rt)
    (kept,) = [e for e in store.due(far + timedelta(days=1)) if e.id == poisoned.id]
    assert kept.failures == 8  # still tried, hourly
    assert store.list() == [letter]  # recorded once, not again at every later failure
    # Armed afresh (as the run's check re-arms a missing dispatch) and quarantined again.
    store.commit(Commit(run_id=poisoned.run_id, outbox_add=[poisoned]))
    for _ in range(5):
        tick(rt)
        clock.sleep(700)
    assert store.list() == [letter]


class FlakyBus(MemoryBus):
    """A bus whose batch publishes fail while `down` (a Pub/Sub outage)."""

    down = False

    def publish_all(self, topic: str, events: Sequence[Envelope]) -> None:
        if self.down:
            raise TransientError("Pub/Sub unavailable")
        super().publish_all(topic, events)


def _failed_once(rt: Runtime, bus: MemoryBus, key: str) -> None:
    """Run "r" of `retrying` with `key`; its first attempt fails: a retry timer 30 s out."""
    FAILS.pop(key, None)
    start_run(rt, RunRequested(flow="retrying", params={"key": key}), run_id="r")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    failed = run_task(rt, req)
    assert failed is not None
    advance(rt, "r", failed)
    bus.published.clear()


def test_a_retry_timer_quarantined_in_a_pubsub_outage_fires_once_the_outage_ends() -> None:
    store, bus, clock = MemoryStore(), FlakyBus(), VirtualClock()
    bus.record = True
    rt = memory_runtime(clock=clock, functions=retrying.functions(), store=store, bus=bus)
    store.put_flow(retrying.spec)
    _failed_once(rt, bus, "outage")
    bus.down = True
    for _ in range(8):  # ticks every minute: the timer's publish fails 5 times
        clock.sleep(60)
        tick(rt)
    (letter,) = store.list()
    assert letter.event_id == "r/dispatch-fails-once-2"
    bus.down = False
    for _ in range(7):
        clock.sleep(10 * 60)
        tick(rt)
    _run_the_request_again(rt, store, bus)


def test_a_retry_whose_timer_is_gone_is_rearmed_by_the_runs_hourly_check() -> None:
    """A retry timer deleted (as an older version's quarantine did) leaves its task SCHEDULED
    with nothing to dispatch it: the run's hourly whole-run check arms it again."""
    rt, store, bus, clock = _runtime()
    _failed_once(rt, bus, "gone")
    store.commit(Commit(run_id="r", outbox_done=["dispatch-fails-once-2"]))
    for _ in range(7):
        clock.sleep(10 * 60)
        tick(rt)
    _run_the_request_again(rt, store, bus)


def test_a_tick_pages_through_more_than_a_page_of_due_timers() -> None:
    rt, store, bus, clock = _runtime()
    for i in range(250):  # more than one page (200)
        start_run(rt, RunRequested(flow="retrying", params={"key": f"k{i}"}), run_id=f"r{i}")
    requests = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    for req in requests:
        failed = run_task(rt, req)
        assert failed is not None
        advance(rt, req.run_id, failed)
    clock.sleep(31)
    bus.published.clear()
    assert tick(rt) == 250
    assert len([e for _, e in bus.published if isinstance(e.data, TaskRequested)]) == 250
    snap = store.load("r249", ["fails-once"])
    assert snap is not None
    assert snap.tasks["fails-once"].status is TaskStatus.SCHEDULED


def test_a_lost_root_dispatch_is_queued_again_by_the_hourly_check() -> None:
    """Roots are dispatched without records (their claims create them), so a root whose
    dispatch was lost for good has nothing for the ten-minute redispatch to find: the run's
    hourly whole-run check queues it again, recorded this time."""
    rt, store, bus, clock = _runtime()
    FAILS["lost"] = 1  # no failure: this test is about the lost request only
    start_run(rt, RunRequested(flow="retrying", params={"key": "lost"}), run_id="r")
    bus.published.clear()  # the request never reached a worker, and nothing will redeliver it
    clock.sleep(30 * 60)
    tick(rt)
    assert [e for _, e in bus.published if isinstance(e.data, TaskRequested)] == []
    clock.sleep(31 * 60)
    tick(rt)
    _run_the_request_again(rt, store, bus)
    assert store.stale_dispatches(clock.now() + timedelta(days=1)) == []


def test_a_lost_dispatch_of_a_queued_child_is_requested_again_after_ten_minutes() -> None:
    """A child is queued with a record when its parent ends; if its dispatch is lost, the
    sweeper sends it again once it has waited REDISPATCH_AFTER."""
    rt, store, bus, clock = _runtime()
    store.put_flow(then_retrying.spec)
    FAILS["lost-child"] = 1  # no failure: this test is about the lost request only
    start_run(rt, RunRequested(flow="then-retrying", params={"key": "lost-child"}), run_id="r")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    first = run_task(rt, req)
    assert first is not None
    bus.published.clear()
    advance(rt, "r", first)  # queues the child (recorded) and dispatches it...
    bus.published.clear()  # ...but that dispatch is lost
    clock.sleep(60)
    assert tick(rt) == 0  # queued a minute: a busy queue, not a lost request
    clock.sleep(10 * 60)
    assert tick(rt) == 1
    snap = _run_the_request_again(rt, store, bus)
    assert snap.tasks["fails-once"].redispatch_at is None


def test_a_run_whose_finishing_event_was_lost_for_good_is_finished_by_the_hourly_check() -> None:
    """The last task's completion was committed but its follow-up never ran, and Pub/Sub gave
    up redelivering it: the run's hourly whole-run check finishes it."""
    rt, store, bus, _clock = _runtime()
    clock = rt.clock
    FAILS["lost-finish"] = 1  # succeeds at once
    start_run(rt, RunRequested(flow="retrying", params={"key": "lost-finish"}), run_id="r")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    outcome = run_task(rt, req)
    assert outcome is not None
    # Apply only the task's own record, as a handler that died before its arrivals would have.
    snap = store.load("r", [req.key])
    assert snap is not None
    ended = snap.tasks[req.key].model_copy(
        update={"status": TaskStatus.SUCCEEDED, "lease_until": None}
    )
    store.commit(Commit(run_id="r", tasks=[(ended, snap.etags[req.key])]))
    clock.sleep(30 * 60)
    tick(rt)
    half = store.load("r")
    assert half is not None
    assert half.run.status.value == "RUNNING"  # nothing to rescue it for an hour
    clock.sleep(31 * 60)
    tick(rt)
    done = store.load("r")
    assert done is not None
    assert done.run.status.value == "SUCCEEDED"


def test_a_fired_wake_timer_is_done_and_only_the_next_one_is_left() -> None:
    """The hourly whole-run check is a wake timer: once fired, it is marked done and the one it
    armed for the next hour is the run's only wake (a fired one left behind would fire again on
    every tick, each time arming another)."""
    rt, store, _bus, clock = _runtime()
    FAILS["waits"] = 1  # succeeds when run; its request is never run in this test
    start_run(rt, RunRequested(flow="retrying", params={"key": "waits"}), run_id="r")
    snap = store.load("r")
    assert snap is not None
    (first,) = [e for e in snap.outbox if e.kind == "wake"]
    clock.sleep(61 * 60)
    tick(rt)
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status.value == "RUNNING"
    wakes = [e for e in snap.outbox if e.kind == "wake"]
    assert [e.due_at for e in wakes] == [clock.now() + timedelta(hours=1)]
    assert first.id not in [e.id for e in wakes]
