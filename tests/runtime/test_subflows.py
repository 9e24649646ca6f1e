"""Subflow mechanics the backends do not reach on their own: cancelling a parent cancels the
child run its node waits on, and a waiting node holds no lease that could run out."""

from __future__ import annotations

from typing import Any

from orchestrator.adapters import MemoryBus, MemoryStore, VirtualClock
from orchestrator.contracts import RunRequested, RunStatus, TaskFailed, TaskRequested, TaskStatus
from orchestrator.engine import CancelRun
from orchestrator.runtime import Runtime, advance, memory_runtime, run_task, start_run, tick
from tests.flows.subflows import subflow_naps


def _started() -> tuple[Runtime, MemoryBus, MemoryStore]:
    store, bus = MemoryStore(), MemoryBus()
    bus.record = True
    clock = VirtualClock()
    rt = memory_runtime(clock=clock, functions=subflow_naps.functions(), store=store, bus=bus)
    store.put_flow(subflow_naps.spec)
    start_run(rt, RunRequested(flow="subflow-naps", params={"seconds": 0}), run_id="p")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    assert run_task(rt, req) is None  # the node now waits on its child run
    return rt, bus, store


def _child(store: MemoryStore) -> str:
    snap = store.load("p")
    assert snap is not None
    node = snap.tasks["child-naps"]
    assert node.status is TaskStatus.RUNNING
    assert node.child_run is not None
    return node.child_run


def test_a_waiting_node_holds_no_lease_the_sweeper_could_expire() -> None:
    rt, _, store = _started()
    child = _child(store)
    snap = store.load("p")
    assert snap is not None
    assert snap.tasks["child-naps"].lease_until is None
    rt.clock.sleep(7200)  # far past any lease
    tick(rt)
    assert _child(store) == child  # still waiting, not failed by an expired lease


def test_cancelling_the_parent_cancels_the_child_run() -> None:
    rt, bus, store = _started()
    child = _child(store)
    child_requests = [
        e.data
        for _, e in bus.published
        if isinstance(e.data, TaskRequested) and e.data.run_id == child
    ]
    assert [r.key for r in child_requests] == ["nap"]
    advance(rt, "p", CancelRun("stop"))
    parent, kid = store.load("p"), store.load(child)
    assert parent is not None
    assert kid is not None
    assert parent.run.status is RunStatus.CANCELLED
    assert kid.run.status is RunStatus.CANCELLED
    assert run_task(rt, child_requests[0]) is None  # the child's task never runs
    # The child's end reaches the parent as its node's failure, which changes nothing now.
    ends: list[Any] = [
        e.data for _, e in bus.published if isinstance(e.data, TaskFailed) and e.data.run_id == "p"
    ]
    assert [e.error.type for e in ends] == ["SubflowFailed"]
    assert advance(rt, "p", ends[0]) is False
    assert store.load("p").run.status is RunStatus.CANCELLED  # type: ignore[union-attr]
