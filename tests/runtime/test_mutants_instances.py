"""Two instances over one store: an instance that cached a run in flow attempt 1 reads it
afresh once another instance began attempt 2, and a duplicate trigger of a run in its second
flow attempt sends no first-attempt root requests."""

from __future__ import annotations

from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import RunRequested, RunStatus, TaskFailed, TaskRequested
from orchestrator.runtime import memory_runtime, read_flow_result, start_run
from tests.runtime.pool import Driver, PoolBus
from tests.runtime.test_mutants_rules import BROKEN, retried_fan_in


def _two() -> tuple[Driver, Driver, MemoryStore, PoolBus]:
    store, bus, clock = MemoryStore(), PoolBus(), VirtualClock()
    store.put_flow(retried_fan_in.spec)
    fns = retried_fan_in.functions()
    a = Driver(memory_runtime(clock=clock, functions=fns, store=store, bus=bus), bus)
    b = Driver(memory_runtime(clock=clock, functions=fns, store=store, bus=bus), bus)
    return a, b, store, bus


def _attempt(store: MemoryStore) -> int:
    snap = store.load("r", [])
    assert snap is not None
    return snap.run.attempt


def test_an_instance_holding_a_run_of_an_earlier_flow_attempt_reads_it_afresh() -> None:
    BROKEN.add("once-broken")
    a, b, store, bus = _two()
    start_run(a.rt, RunRequested(flow="retried-fan-in", params={"x": 2}), run_id="r")
    # Instance a handles the first attempt, and so holds the RUNNING run (attempt 1).
    while _attempt(store) == 1:
        topic, event = bus.pool.pop(0)
        # The failed completion that ends attempt 1 goes to instance b: it begins attempt 2.
        (b if isinstance(event.data, TaskFailed) else a).deliver(topic, event)
    assert _attempt(store) == 2
    a.drain()  # attempt 2's events, all on instance a
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    assert read_flow_result(a.rt, a.rt.plan_of(snap.run), snap.run) == 23


def test_a_duplicate_trigger_during_the_second_flow_attempt_sends_no_root_requests() -> None:
    BROKEN.add("once-broken")
    a, _, store, bus = _two()
    request = RunRequested(flow="retried-fan-in", params={"x": 2})
    start_run(a.rt, request, run_id="r")
    while _attempt(store) == 1:
        a.deliver(*bus.pool.pop(0))
    sent = len(bus.published)
    start_run(a.rt, request, run_id="r")  # the trigger delivered again
    again = [e.data for _, e in bus.published[sent:] if isinstance(e.data, TaskRequested)]
    assert again == []
    a.drain()
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
