"""Growing a run-time map across a failure: the children a chunk created but whose dispatches
were lost (the publish failed after the chunk committed) are requested again by the event's
redelivery, which carries on from the cursor; nothing waits for the sweeper."""

from __future__ import annotations

from dataclasses import replace

from orchestrator import flow, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import Envelope, RunRequested, RunStatus, TaskRequested, TaskStatus
from orchestrator.engine import CancelRun, ResumeRun
from orchestrator.ports import Commit, Counts
from orchestrator.runtime import advance, memory_runtime, read_flow_result, start_run
from tests.runtime.pool import Driver, PoolBus


@task(name="listing")
def listing(n: int) -> list[int]:
    return list(range(n))


@task(name="double")
def double(x: int) -> int:
    return 2 * x


@flow(name="doubled")
def doubled(n: int) -> list[int]:
    return double.map(listing(n))


def _child_request(topic: str, event: Envelope) -> bool:
    return isinstance(event.data, TaskRequested) and event.data.key.startswith("double[")


def test_children_whose_dispatch_was_lost_after_their_chunk_committed_are_sent_again() -> None:
    bus = PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=doubled.functions(), bus=bus)
    rt.flows.put_flow(doubled.spec)
    bus.fail(_child_request)  # the chunk's first dispatch fails: the handler answers non-2xx
    start_run(rt, RunRequested(flow="doubled", params={"n": 5}), run_id="r")
    d = Driver(rt, bus)
    d.drain()  # the failed delivery comes again; no sweep, no clock skipped
    snap = rt.state.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    assert read_flow_result(rt, rt.plan_of(snap.run), snap.run) == [0, 2, 4, 6, 8]
    requested = [
        e.data.key
        for _, e in bus.published
        if isinstance(e.data, TaskRequested) and e.data.key.startswith("double[")
    ]
    assert sorted(set(requested)) == [f"double[{i}]" for i in range(5)]


def test_growth_paused_whose_redelivery_was_lost_is_carried_on_by_the_hourly_check() -> None:
    """A map paused after its delivery's budget, and Pub/Sub gave up on that event: the run's
    hourly check finds the map still growing and carries on from its cursor."""
    bus = PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=doubled.functions(), bus=bus)
    rt.flows.put_flow(doubled.spec)
    rt = replace(rt, grow_chunks=1)  # 400 children per delivery
    start_run(rt, RunRequested(flow="doubled", params={"n": 401}), run_id="r")
    d = Driver(rt, bus)
    d.drain(lose=lambda _, e: getattr(e.data, "key", None) == "listing")
    paused = rt.state.load("r", ["double"])
    assert paused is not None
    assert paused.tasks["double"].grown == 400
    assert paused.run.status is RunStatus.RUNNING
    d.settle(rounds=2)
    snap = rt.state.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    assert read_flow_result(rt, rt.plan_of(snap.run), snap.run) == [2 * i for i in range(401)]


def test_a_resume_regrowing_a_cancelled_map_counts_the_children_it_kept() -> None:
    """Cancelled while growing, after its first 400 children succeeded: the resumed map grows
    again, keeps those 400 (they do not run again) and counts them, so the run finishes."""
    bus = PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=doubled.functions(), bus=bus)
    rt.flows.put_flow(doubled.spec)
    rt = replace(rt, grow_chunks=1)
    start_run(rt, RunRequested(flow="doubled", params={"n": 401}), run_id="r")
    d = Driver(rt, bus)
    d.drain(lose=lambda _, e: getattr(e.data, "key", None) == "listing")
    advance(rt, "r", CancelRun("stop"))
    cancelled = rt.state.load("r")
    assert cancelled is not None
    assert cancelled.run.status is RunStatus.CANCELLED
    kept = [k for k, t in cancelled.tasks.items() if t.status is TaskStatus.SUCCEEDED]
    assert len(kept) == 1 + 400  # the producer and the first chunk's children
    rt = replace(rt, grow_chunks=25)
    d.rt = rt
    ran = len(bus.published)
    advance(rt, "r", ResumeRun(attempt=1))
    d.drain()
    snap = rt.state.load("r")
    assert snap is not None
    assert (snap.run.status, snap.run.attempt) == (RunStatus.SUCCEEDED, 2)
    assert read_flow_result(rt, rt.plan_of(snap.run), snap.run) == [2 * i for i in range(401)]
    again = [e.data.key for _, e in bus.published[ran:] if isinstance(e.data, TaskRequested)]
    assert again == ["double[400]"]  # only the child that never ran


@task(name="total")
def total(values: list[int]) -> int:
    return sum(values)


@flow(name="doubled-total")
def doubled_total(n: int) -> int:
    return total(double.map(listing(n)))


class CrashAfterMapEnds(MemoryStore):
    """The commit that ends the map's record is written, then its handler dies."""

    crashed = False

    def commit(self, commit: Commit) -> Counts:
        counts = super().commit(commit)
        ends = any(t.key == "double" and t.status.terminal for t, _ in commit.tasks)
        if ends and not self.crashed:
            self.crashed = True
            raise RuntimeError("crash after the map ended")
        return counts


def test_a_redelivery_after_an_empty_map_ended_decides_its_consumer() -> None:
    """An empty list: the map ends at once, with no children, and its arrival decides its
    consumer. The handler died right after that commit: the redelivery follows the ended map
    from the counters and queues the consumer (no sweep, no hourly check)."""
    store, bus = CrashAfterMapEnds(), PoolBus()
    rt = memory_runtime(
        clock=VirtualClock(), functions=doubled_total.functions(), store=store, bus=bus
    )
    store.put_flow(doubled_total.spec)
    start_run(rt, RunRequested(flow="doubled-total", params={"n": 0}), run_id="r")
    d = Driver(rt, bus)
    while bus.pool:
        topic, event = bus.pool.pop(0)
        try:
            d.deliver(topic, event)
        except RuntimeError:
            d.deliver(topic, event)  # Pub/Sub redelivers: the handler never answered
    assert store.crashed
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    assert read_flow_result(rt, rt.plan_of(snap.run), snap.run) == 0
