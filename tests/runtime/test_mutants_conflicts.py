"""Write conflicts on the per-task path: a step whose commit lost a race runs again from its
reads within the same delivery (no redelivery needed), and a child another writer created
first, then died before dispatching, is dispatched by the writer that found it."""

from __future__ import annotations

from orchestrator import flow, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import RunRequested, RunStatus, TaskStatus
from orchestrator.errors import ConflictError
from orchestrator.ports import Commit, Counts
from orchestrator.runtime import memory_runtime, read_flow_result, start_run
from tests.runtime.pool import Driver, PoolBus


@task(name="first")
def first(x: int) -> int:
    return x + 1


@task(name="second")
def second(x: int) -> int:
    return x * 3


@flow(name="two-steps")
def two_steps(x: int) -> int:
    return second(first(x))


class LosesRaces(MemoryStore):
    """The first commit that `loses` matches raises ConflictError: after writing it when
    `written` (another writer committed the same first), else without writing (the record
    moved since it was read)."""

    def __init__(self, loses: str, *, written: bool) -> None:
        super().__init__()
        self.loses, self.written, self.lost = loses, written, 0

    def commit(self, commit: Commit) -> Counts:
        if not self.lost and self._matches(commit):
            self.lost += 1
            if self.written:
                super().commit(commit)
            raise ConflictError(f"lost the race on {self.loses}")
        return super().commit(commit)

    def _matches(self, commit: Commit) -> bool:
        if self.loses == "finish":
            return commit.run is not None and commit.run.status is RunStatus.SUCCEEDED
        return any(t.key == self.loses and t.status is TaskStatus.QUEUED for t, _ in commit.tasks)


def _run_to_the_end(store: LosesRaces) -> Driver:
    bus = PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=two_steps.functions(), store=store, bus=bus)
    store.put_flow(two_steps.spec)
    start_run(rt, RunRequested(flow="two-steps", params={"x": 4}), run_id="r")
    d = Driver(rt, bus)
    while bus.pool:
        topic, event = bus.pool.pop(0)
        assert d.deliver(topic, event), f"{event.id} needed a redelivery"
    assert store.lost == 1
    return d


def test_a_finish_that_lost_a_race_to_a_write_is_retried_in_the_same_delivery() -> None:
    d = _run_to_the_end(LosesRaces("finish", written=False))
    snap = d.rt.state.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    assert read_flow_result(d.rt, d.rt.plan_of(snap.run), snap.run) == 15


def test_a_child_another_writer_created_is_dispatched_by_the_writer_that_found_it() -> None:
    d = _run_to_the_end(LosesRaces("second", written=True))
    snap = d.rt.state.load("r")
    assert snap is not None
    assert snap.tasks["second"].status is TaskStatus.SUCCEEDED
    assert snap.run.status is RunStatus.SUCCEEDED
