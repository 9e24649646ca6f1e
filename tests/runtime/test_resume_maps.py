"""`runs retry` (ResumeRun) of runs with run-time maps: after the map's producer failed, after a
cancel before the map grew, and after one of its children failed. Each resumed run finishes on
its own events, without waiting for the hourly recheck."""

from __future__ import annotations

from orchestrator import flow, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import RunRequested, RunStatus
from orchestrator.engine import CancelRun, ResumeRun
from orchestrator.runtime import advance, memory_runtime, read_flow_result, start_run
from tests.flows.dynamic import summarize
from tests.runtime.pool import Driver, PoolBus

BROKEN: set[str] = set()  # what fails now; the tests repair it before resuming


@task(name="produce")
def produce(count: int) -> list[int]:
    if "produce" in BROKEN:
        raise RuntimeError("the producer is broken")
    return list(range(count))


@task(name="square")
def square(x: int) -> int:
    if f"square:{x}" in BROKEN:
        raise RuntimeError(f"cannot square {x}")
    return x * x


@flow(name="squares")
def squares(count: int) -> dict[str, int]:
    return summarize(square.map(produce(count)))


def _driver() -> tuple[Driver, MemoryStore]:
    store, bus = MemoryStore(), PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=squares.functions(), store=store, bus=bus)
    store.put_flow(squares.spec)
    return Driver(rt, bus), store


def _status(store: MemoryStore) -> RunStatus:
    snap = store.load("r", [])
    assert snap is not None
    return snap.run.status


def _resume_and_finish(driver: Driver, store: MemoryStore, attempt: int) -> None:
    BROKEN.clear()
    advance(driver.rt, "r", ResumeRun(attempt=attempt))
    driver.drain()  # its own events only: no sweep, no hourly recheck
    snap = store.load("r", [])
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    value = read_flow_result(driver.rt, driver.rt.plan_of(snap.run), snap.run)
    assert value == {"count": 4, "total": 0 + 1 + 4 + 9}


def test_resume_after_the_producer_of_a_map_failed() -> None:
    driver, store = _driver()
    BROKEN.add("produce")
    start_run(driver.rt, RunRequested(flow="squares", params={"count": 4}), run_id="r")
    driver.drain()
    assert _status(store) is RunStatus.FAILED
    _resume_and_finish(driver, store, 1)


def test_resume_after_a_cancel_before_the_map_grew() -> None:
    driver, store = _driver()
    start_run(driver.rt, RunRequested(flow="squares", params={"count": 4}), run_id="r")
    advance(driver.rt, "r", CancelRun())
    driver.drain()
    assert _status(store) is RunStatus.CANCELLED
    _resume_and_finish(driver, store, 1)


def test_resume_after_a_child_of_the_map_failed() -> None:
    driver, store = _driver()
    BROKEN.add("square:2")
    start_run(driver.rt, RunRequested(flow="squares", params={"count": 4}), run_id="r")
    driver.drain()
    assert _status(store) is RunStatus.FAILED
    _resume_and_finish(driver, store, 1)
