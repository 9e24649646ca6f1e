"""A run's end is announced once per flow attempt, under an id of its own: a run resumed after
it failed, that fails again, announces a second failure that downstream dedupe keeps. Every
way a run ends (succeeded, failed, cancelled, timed out) reaches the run-events topic with
what docs/howto/alerting.md documents."""

from __future__ import annotations

from orchestrator import flow, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import EVENT_TYPE_OF, RunFailed, RunRequested, RunStatus, RunSucceeded
from orchestrator.engine import CancelRun, Reconcile, ResumeRun
from orchestrator.runtime import advance, memory_runtime, start_run
from tests.flows.prefect_features import breaks
from tests.runtime.pool import Driver, PoolBus


@flow(name="always-breaks")
def always_breaks(x: int) -> int:
    return breaks(x)


def test_each_failed_flow_attempt_is_announced_under_its_own_id() -> None:
    store, bus = MemoryStore(), PoolBus()
    rt = memory_runtime(
        clock=VirtualClock(), functions=always_breaks.functions(), store=store, bus=bus
    )
    store.put_flow(always_breaks.spec)
    driver = Driver(rt, bus)
    start_run(rt, RunRequested(flow="always-breaks", params={"x": 1}), run_id="r")
    driver.settle()
    advance(rt, "r", ResumeRun(attempt=1))
    driver.settle()
    advance(rt, "r", ResumeRun(attempt=1))  # a repeated resume of the same attempt: no-op
    driver.settle()
    snap = store.load("r", [])
    assert snap is not None
    assert (snap.run.status, snap.run.attempt) == (RunStatus.FAILED, 2)
    ends = [e for topic, e in bus.published if topic == rt.topics.finished]
    assert all(isinstance(e.data, RunFailed) for e in ends)
    assert [e.id for e in ends] == ["r/1/failed", "r/2/failed"]


@task
def plus_one(x: int) -> int:
    return x + 1


@flow(name="ends-any-way", timeout_seconds=60)
def ends_any_way(x: int) -> int:
    return plus_one(x)


def test_every_end_of_a_run_reaches_the_run_events_topic() -> None:
    store, bus = MemoryStore(), PoolBus()
    functions = {**always_breaks.functions(), **ends_any_way.functions()}
    rt = memory_runtime(clock=VirtualClock(), functions=functions, store=store, bus=bus)
    store.put_flow(always_breaks.spec)
    store.put_flow(ends_any_way.spec)
    driver = Driver(rt, bus)
    for run_id, name in (("ok", "ends-any-way"), ("bad", "always-breaks")):
        start_run(rt, RunRequested(flow=name, params={"x": 1}), run_id=run_id)
    driver.drain()
    start_run(rt, RunRequested(flow="ends-any-way", params={"x": 1}), run_id="stopped")
    advance(rt, "stopped", CancelRun("an operator's cancel"))
    start_run(rt, RunRequested(flow="ends-any-way", params={"x": 1}), run_id="late")
    rt.clock.sleep(61)  # past its 60 s timeout, its task never ran: its timer fires
    advance(rt, "late", Reconcile())
    driver.settle()
    ends = {e.data.run_id: e for topic, e in bus.published if topic == rt.topics.finished}
    seen = {
        run_id: (EVENT_TYPE_OF[type(e.data)], e.id, getattr(e.data, "status", None))
        for run_id, e in ends.items()
    }
    assert seen == {
        "ok": ("dev.kumoflow.run.succeeded", "ok/1/succeeded", None),
        "bad": ("dev.kumoflow.run.failed", "bad/1/failed", RunStatus.FAILED),
        "stopped": ("dev.kumoflow.run.failed", "stopped/1/cancelled", RunStatus.CANCELLED),
        "late": ("dev.kumoflow.run.failed", "late/1/failed", RunStatus.FAILED),
    }
    assert isinstance(ends["ok"].data, RunSucceeded)
    errors = {
        run_id: (e.data.error.type, e.data.error.message)
        for run_id, e in ends.items()
        if isinstance(e.data, RunFailed)
    }
    assert errors == {
        "bad": ("ValueError", "broken 1"),
        "stopped": ("Cancelled", "an operator's cancel"),
        "late": ("TimeoutError", "flow run exceeded its 60.0 s timeout"),
    }
