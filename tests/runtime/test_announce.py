"""A run's end is announced once per flow attempt, under an id of its own: a run resumed after
it failed, that fails again, announces a second failure that downstream dedupe keeps."""

from __future__ import annotations

from orchestrator import flow
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import RunFailed, RunRequested, RunStatus
from orchestrator.engine import ResumeRun
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
