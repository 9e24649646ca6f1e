"""A run-time map's growth is recorded before its children exist, moves a cursor chunk by
chunk, and does bounded work per delivery: a cancel during growth stops it (no child is made
or runs after the cancel), and a map wider than one delivery's budget grows on redelivery
from where it stopped, each child requested once."""

from __future__ import annotations

from dataclasses import replace

from orchestrator import flow, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import RunRequested, RunStatus, TaskRequested, TaskStatus
from orchestrator.engine import CancelRun, ResumeRun
from orchestrator.ports import Commit, Counts
from orchestrator.runtime import (
    Runtime,
    advance,
    memory_runtime,
    read_flow_result,
    start_run,
)
from tests.flows.dynamic import summarize
from tests.runtime.pool import Driver, PoolBus

RAN: list[int] = []


@task(name="produce")
def produce(count: int) -> list[int]:
    return list(range(count))


@task(name="square")
def square(x: int) -> int:
    RAN.append(x)
    return x * x


@flow(name="wide-squares")
def wide_squares(count: int) -> dict[str, int]:
    return summarize(square.map(produce(count)))


class CancelDuringGrowth(MemoryStore):
    """A user cancels the run just as the map commits its first chunk of children."""

    rt: Runtime
    cancelled = False

    def commit(self, commit: Commit) -> Counts:
        if not self.cancelled and any(t.key.startswith("square[") for t, _ in commit.tasks):
            self.cancelled = True
            advance(self.rt, commit.run_id, CancelRun("cancelled while the map grew"))
        return super().commit(commit)


def _driver(store: MemoryStore) -> Driver:
    bus = PoolBus()
    rt = memory_runtime(
        clock=VirtualClock(), functions=wide_squares.functions(), store=store, bus=bus
    )
    store.put_flow(wide_squares.spec)
    return Driver(rt, bus)


def _requests(driver: Driver) -> list[str]:
    return [
        e.data.key
        for _, e in driver.bus.published
        if isinstance(e.data, TaskRequested) and e.data.key.startswith("square[")
    ]


def test_a_cancel_during_growth_stops_it_and_no_child_runs() -> None:
    RAN.clear()
    store = CancelDuringGrowth()
    driver = _driver(store)
    store.rt = driver.rt
    start_run(driver.rt, RunRequested(flow="wide-squares", params={"count": 1000}), run_id="c")
    driver.settle()
    snap = store.load("c")
    assert snap is not None
    assert store.cancelled
    assert snap.run.status is RunStatus.CANCELLED
    live = {k: t.status for k, t in snap.tasks.items() if not t.status.terminal}
    assert live == {}
    assert RAN == []  # no child's code started after the cancel
    assert _requests(driver) == []  # the chunk that lost to the cancel was never requested
    # The map and every one of its 1,000 children are accounted for as cancelled.
    cancelled = [k for k, t in snap.tasks.items() if t.status is TaskStatus.CANCELLED]
    assert len([k for k in cancelled if k.startswith("square[")]) == 1000
    # Resumed, the map grows again and the run ends with every child's result.
    advance(driver.rt, "c", ResumeRun(attempt=1))
    driver.settle()
    snap = store.load("c", [])
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    value = read_flow_result(driver.rt, driver.rt.plan_of(snap.run), snap.run)
    assert value == {"count": 1000, "total": sum(x * x for x in range(1000))}
    assert sorted(RAN) == list(range(1000))


def test_growth_wider_than_one_delivery_goes_on_from_its_cursor() -> None:
    RAN.clear()
    store = MemoryStore()
    driver = _driver(store)
    driver.rt = replace(driver.rt, grow_chunks=1)  # 400 children per delivery
    start_run(driver.rt, RunRequested(flow="wide-squares", params={"count": 1000}), run_id="w")
    driver.drain()
    snap = store.load("w")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    requests = _requests(driver)
    assert sorted(requests) == sorted(f"square[{i}]" for i in range(1000))  # each once
    assert sorted(RAN) == list(range(1000))
    value = read_flow_result(driver.rt, driver.rt.plan_of(snap.run), snap.run)
    assert value == {"count": 1000, "total": sum(x * x for x in range(1000))}
