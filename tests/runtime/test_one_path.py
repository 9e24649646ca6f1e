"""Every way an attempt can end reaches the store through one path, carrying the same facts
(a gate's choice, the lengths run-time maps read, a subflow's result) and passing the same
trust checks: a worker, a duplicate request that finds the result stored, lease expiry, a
subflow's end."""

from __future__ import annotations

import pytest

from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import Envelope, RunRequested, RunStatus, TaskRequested, TaskSucceeded
from orchestrator.engine import CancelRun
from orchestrator.errors import TransientError
from orchestrator.ports import Commit, Counts, Snapshot
from orchestrator.runtime import advance, memory_runtime, read_flow_result, start_run, tick
from orchestrator.sdk import Flow
from tests.flows.branching import branching
from tests.flows.subflows import map_over_a_child, map_subflow, with_subflow
from tests.runtime.pool import Driver, PoolBus


def _driver(flow: Flow[..., object]) -> tuple[Driver, MemoryStore]:
    store, bus = MemoryStore(), PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=flow.functions(), store=store, bus=bus)
    store.put_flow(flow.spec)
    for spec in flow.spec.subflows.values():
        store.put_flow(spec)
    return Driver(rt, bus), store


def _gate_done(topic: str, event: Envelope) -> bool:
    return isinstance(event.data, TaskSucceeded) and event.data.key.startswith("branch")


def test_a_gate_whose_report_failed_once_keeps_its_choice() -> None:
    """The gate stored its result, then its completion's publish failed: the redelivered
    request finds the result stored and reports it with the gate's choice, so the branch
    chosen runs and the run's result is that branch's."""
    driver, store = _driver(branching)
    driver.bus.fail(_gate_done)
    start_run(driver.rt, RunRequested(flow="branching", params={"n": 20}), run_id="g")
    driver.settle()
    snap = store.load("g")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    assert driver.dead == []
    plan = driver.rt.plan_of(snap.run)
    assert read_flow_result(driver.rt, plan, snap.run) == "*big*"


def test_a_gate_whose_reports_all_failed_is_completed_by_lease_expiry_with_its_choice() -> None:
    """Nobody re-sends the gate's request: the sweeper finds its lease expired and its result
    stored, and completes it from the store, choice included."""
    driver, store = _driver(branching)
    driver.bus.fail(_gate_done)
    start_run(driver.rt, RunRequested(flow="branching", params={"n": 3}), run_id="g")
    driver.drain(lose=lambda _, e: isinstance(e.data, TaskRequested))
    driver.settle()
    snap = store.load("g")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    assert read_flow_result(driver.rt, driver.rt.plan_of(snap.run), snap.run) == "small"


def test_map_over_a_subflows_result_runs() -> None:
    """The child's end reports the lengths of the lists the parent's run-time maps read."""
    driver, store = _driver(map_over_a_child)
    start_run(driver.rt, RunRequested(flow="map-over-a-child", params={"n": 3}), run_id="m")
    driver.settle()
    snap = store.load("m")
    assert snap is not None
    assert driver.dead == []
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    assert read_flow_result(driver.rt, driver.rt.plan_of(snap.run), snap.run) == [0, 2, 4]


class HoldFailsOnce(MemoryStore):
    """The store is away just when a subflow node's worker would hold the node for its child
    (the worker died there, as far as the run can tell)."""

    failed = False

    def commit(self, commit: Commit) -> Counts:
        holds = [t for t, _ in commit.tasks if t.child_run and t.lease_until is None]
        if holds and not self.failed and not holds[0].status.terminal:
            self.failed = True
            raise TransientError("Firestore unavailable")
        return super().commit(commit)


def test_a_subflow_node_whose_hold_was_lost_waits_for_its_child() -> None:
    """The child run started, the node's hold did not happen, and the node's lease ran out
    before the child ended: the node waits for the child instead of failing beside it."""
    store, bus = HoldFailsOnce(), PoolBus()
    rt = memory_runtime(
        clock=VirtualClock(), functions=with_subflow.functions(), store=store, bus=bus
    )
    store.put_flow(with_subflow.spec)
    driver = Driver(rt, bus)
    start_run(rt, RunRequested(flow="with-a-subflow", params={"n": 4}), run_id="p")
    driver.deliver(*bus.pool.pop(0))  # the child started; holding the node failed
    assert store.failed
    driver.rt.clock.sleep(7200)  # past the node's lease, before anything of the child ran
    tick(rt, budget_s=30)
    driver.settle()
    snap = store.load("p")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    assert read_flow_result(rt, rt.plan_of(snap.run), snap.run) == {"child": 5, "doubled": 10}
    node = next(t for t in snap.tasks.values() if t.child_run)
    assert node.attempt == 1  # the child's own attempt completed it, not a retry


class CascadeDiesOnce(MemoryStore):
    """The store goes away while a cancel cascades to a parent's child runs: after the first
    child is cancelled, the next child's cancel fails (the cancelling handler dies there)."""

    cancelled_children = 0
    failed = False

    def commit(self, commit: Commit) -> Counts:
        cancels_child = (
            commit.run is not None
            and commit.run.parent is not None
            and commit.run.status is RunStatus.CANCELLED
        )
        if cancels_child and self.cancelled_children == 1 and not self.failed:
            self.failed = True
            raise TransientError("Firestore unavailable")
        counts = super().commit(commit)
        if cancels_child:
            self.cancelled_children += 1
        return counts


def test_a_cancel_cascade_that_died_part_way_is_finished_by_its_redelivery() -> None:
    store, bus = CascadeDiesOnce(), PoolBus()
    rt = memory_runtime(
        clock=VirtualClock(), functions=map_subflow.functions(), store=store, bus=bus
    )
    store.put_flow(map_subflow.spec)
    driver = Driver(rt, bus)
    start_run(
        rt, RunRequested(flow="map-over-a-subflow", params={"xs": [1, 2, 3, 4, 5]}), run_id="p"
    )
    for _ in range(5):  # each node's worker starts its child run; nothing of the children ran
        driver.deliver(*bus.pool.pop(0))
    children = [t.child_run for t in (store.load("p") or _never()).tasks.values() if t.child_run]
    assert len(children) == 5
    with pytest.raises(TransientError):
        advance(rt, "p", CancelRun("stop it all"))
    advance(rt, "p", CancelRun("stop it all"))  # the cancel, delivered again
    driver.settle()
    assert store.failed
    ends = {c: (store.load(c, []) or _never()).run.status for c in children}
    assert ends == dict.fromkeys(children, RunStatus.CANCELLED)
    parent = store.load("p", [])
    assert parent is not None
    assert parent.run.status is RunStatus.CANCELLED


def _never() -> Snapshot:
    raise AssertionError("no such run")


def test_a_subflow_start_whose_root_publish_failed_is_resumed_not_failed() -> None:
    """Starting the child run, the publish of its root fails (Pub/Sub away) after the child was
    made: the node's request is answered non-2xx and redelivered, and the redelivery resumes
    the start under the same claim; the node does not fail beside a child that runs on."""
    store, bus = MemoryStore(), PoolBus()
    rt = memory_runtime(
        clock=VirtualClock(), functions=with_subflow.functions(), store=store, bus=bus
    )
    store.put_flow(with_subflow.spec)
    driver = Driver(rt, bus)
    start_run(rt, RunRequested(flow="with-a-subflow", params={"n": 4}), run_id="p")
    bus.fail(lambda _, e: isinstance(e.data, TaskRequested) and e.data.run_id != "p")
    driver.settle()
    snap = store.load("p")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    assert read_flow_result(rt, rt.plan_of(snap.run), snap.run) == {"child": 5, "doubled": 10}
    node = next(t for t in snap.tasks.values() if t.child_run)
    assert node.attempt == 1
    assert driver.dead == []
