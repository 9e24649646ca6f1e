"""Sharded counters at their edges (SHARD = 100): a fan-in of exactly 100 parents (one
unsharded counter) and of 101 (a full shard and a shard of one), run-time maps of exactly 100
and 101 children, and a map wider than a shard with one failed leaf. Each test names the
counter values it expects, so a shard that never rolls up, rolls up early or loses its `bad`
shows as a wrong count, not only as a run that hangs."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import flow, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import RunRequested, RunStatus, TaskStatus
from orchestrator.engine import SHARD
from orchestrator.ports import Commit, Counts
from orchestrator.runtime import memory_runtime, read_flow_result, start_run
from tests.runtime.pool import Driver, PoolBus


@task(name="leaf")
def leaf(x: int) -> int:
    if x == 7:
        raise ValueError("leaf 7 fails")
    return x + 1


@task(name="fan-in")
def fan_in(values: list[int]) -> int:
    return sum(values)


@task(name="make")
def make(n: int) -> list[int]:
    return [10 + i for i in range(n)]  # never 7: only the static maps' leaf 7 fails


@task(name="make-with-seven")
def make_with_seven(n: int) -> list[int]:
    return list(range(n))


@flow(name="static-fan-in")
def static_fan_in(items: list[int]) -> int:
    return fan_in(leaf.map(items))


@flow(name="run-time-fan-in")
def run_time_fan_in(n: int) -> int:
    return fan_in(leaf.map(make(n)))


@flow(name="run-time-leaves")
def run_time_leaves(n: int) -> list[int]:
    return leaf.map(make_with_seven(n))


def _run(f: Any, params: dict[str, Any]) -> tuple[Driver, str]:
    bus = PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=f.functions(), bus=bus)
    rt.flows.put_flow(f.spec)
    start_run(rt, RunRequested(flow=f.spec.name, params=params), run_id="r")
    driver = Driver(rt, bus)
    driver.drain()
    return driver, "r"


def _counters(d: Driver, *names: str) -> dict[str, dict[str, int]]:
    return dict(d.rt.state.counters("r", list(names)))


def test_shard_is_one_hundred() -> None:
    assert SHARD == 100  # the widths below sit on either side of it


def test_a_fan_in_of_exactly_one_hundred_parents_waits_for_all_of_them_unsharded() -> None:
    items = [10 + i for i in range(100)]
    bus = PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=static_fan_in.functions(), bus=bus)
    rt.flows.put_flow(static_fan_in.spec)
    start_run(rt, RunRequested(flow="static-fan-in", params={"items": items}), run_id="r")
    d = Driver(rt, bus)
    # Deliver every leaf's completion but the last: the fan-in must not exist yet.
    held = None
    while bus.pool:
        topic, event = bus.pool.pop(0)
        if getattr(event.data, "key", None) == "leaf[99]" and topic == rt.topics.events:
            held = (topic, event)
            continue
        d.deliver(topic, event)
    assert held is not None
    assert rt.state.tasks("r", ["fan-in"])[0] == {}
    top = _counters(d, "fanin.1.fan-in")["fanin.1.fan-in"]
    assert (top["done"], top["bad"]) == (99, 0)
    d.deliver(*held)
    d.drain()
    snap = rt.state.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    assert read_flow_result(rt, rt.plan_of(snap.run), snap.run) == sum(i + 1 for i in items)
    counts = _counters(d, "fanin.1.fan-in", "shard.0.fanin.1.fan-in", "run.1")
    assert (counts["fanin.1.fan-in"]["done"], counts["fanin.1.fan-in"]["bad"]) == (100, 0)
    assert counts.get("shard.0.fanin.1.fan-in", {}).get("done", 0) == 0  # not sharded


def test_a_fan_in_of_one_hundred_and_one_parents_rolls_up_both_shards() -> None:
    items = [10 + i for i in range(101)]
    d, run_id = _run(static_fan_in, {"items": items})
    snap = d.rt.state.load(run_id)
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    assert read_flow_result(d.rt, d.rt.plan_of(snap.run), snap.run) == sum(i + 1 for i in items)
    names = ("fanin.1.fan-in", "shard.0.fanin.1.fan-in", "shard.1.fanin.1.fan-in")
    counts = _counters(d, *names)
    assert counts["shard.0.fanin.1.fan-in"]["done"] == 100
    assert counts["shard.1.fanin.1.fan-in"]["done"] == 1
    assert (counts["fanin.1.fan-in"]["done"], counts["fanin.1.fan-in"]["bad"]) == (2, 0)


def test_a_failed_parent_in_the_last_small_shard_skips_the_fan_in_and_fails_the_run() -> None:
    items = [10 + i for i in range(100)] + [7]  # parent 100, alone in shard 1, fails
    d, run_id = _run(static_fan_in, {"items": items})
    snap = d.rt.state.load(run_id)
    assert snap is not None
    assert snap.run.status is RunStatus.FAILED
    assert snap.tasks["fan-in"].status is TaskStatus.SKIPPED
    top = _counters(d, "fanin.1.fan-in")["fanin.1.fan-in"]
    assert (top["done"], top["bad"]) == (2, 1)


@pytest.mark.parametrize("n", [100, 101, 250])
def test_a_run_time_map_at_and_past_a_shard_waits_for_every_child(n: int) -> None:
    d, run_id = _run(run_time_fan_in, {"n": n})
    snap = d.rt.state.load(run_id)
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    assert snap.tasks["fan-in"].status is TaskStatus.SUCCEEDED
    expected = sum(11 + i for i in range(n))
    assert read_flow_result(d.rt, d.rt.plan_of(snap.run), snap.run) == expected
    top = _counters(d, "fanin.1.fan-in")["fanin.1.fan-in"]
    shards = -(-n // SHARD)
    # The map's own arrival (done 1), its children: one each up to a shard, else one per shard.
    assert (top["done"], top["more"], top["mdone"], top["bad"]) == (
        1,
        n if n <= SHARD else shards,
        n if n <= SHARD else shards,
        0,
    )


@pytest.mark.parametrize("n", [101, 150])
def test_a_map_wider_than_a_shard_with_one_failed_leaf_fails_the_run(n: int) -> None:
    d, run_id = _run(run_time_leaves, {"n": n})
    snap = d.rt.state.load(run_id)
    assert snap is not None
    assert snap.run.status is RunStatus.FAILED
    assert snap.run.error is not None
    assert "leaf 7 fails" in snap.run.error.message
    failed = [k for k, t in snap.tasks.items() if t.status is TaskStatus.FAILED]
    assert failed == ["leaf[7]"]
    top = _counters(d, "run.1")["run.1"]
    assert top["bad"] == 1
    assert top["mdone"] == -(-n // SHARD)


def test_a_map_of_exactly_one_hundred_leaves_with_one_failed_fails_the_run() -> None:
    d, run_id = _run(run_time_leaves, {"n": 100})
    snap = d.rt.state.load(run_id)
    assert snap is not None
    assert snap.run.status is RunStatus.FAILED
    top = _counters(d, "run.1")["run.1"]
    assert (top["mdone"], top["bad"]) == (100, 1)


class CrashAfterRollups(MemoryStore):
    """Each shard's roll-up commits, then its handler dies before deciding anything."""

    def __init__(self) -> None:
        super().__init__()
        self.crashed: list[str] = []

    def commit(self, commit: Commit) -> Counts:
        counts = super().commit(commit)
        fresh = [m for m in commit.markers if m not in self.crashed]
        if fresh:
            self.crashed += fresh
            raise RuntimeError(f"crash after rolling up {fresh}")
        return counts


def test_a_redelivery_after_a_roll_up_committed_reads_the_top_counter_and_decides() -> None:
    """The handler that rolled a shard up died before deciding: its redelivery finds the
    roll-up's marker taken, reads the top counter instead, and decides the fan-in at once
    (no sweep, no hourly check)."""
    store, bus = CrashAfterRollups(), PoolBus()
    rt = memory_runtime(
        clock=VirtualClock(), functions=static_fan_in.functions(), store=store, bus=bus
    )
    store.put_flow(static_fan_in.spec)
    items = [10 + i for i in range(101)]
    start_run(rt, RunRequested(flow="static-fan-in", params={"items": items}), run_id="r")
    d = Driver(rt, bus)
    crashes = 0
    while bus.pool:
        topic, event = bus.pool.pop(0)
        try:
            d.deliver(topic, event)
        except RuntimeError:
            crashes += 1
            d.deliver(topic, event)  # Pub/Sub redelivers: the handler never answered
    assert crashes == 2  # shard 0 (100 parents) and shard 1 (1 parent)
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    assert read_flow_result(rt, rt.plan_of(snap.run), snap.run) == sum(i + 1 for i in items)
    top = store.counters("r", ["fanin.1.fan-in"])["fanin.1.fan-in"]
    assert (top["done"], top["bad"]) == (2, 0)  # each shard rolled up once
