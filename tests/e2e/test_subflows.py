"""Subflows on every backend: a child run per call, its result passed on by reference, a
child's failure failing the parent's node, `.map` over a flow."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows.subflows import map_subflow, subflow_fails, with_subflow


def test_a_subflow_is_a_child_run_whose_result_flows_on(backend: Any) -> None:
    out = backend.run(with_subflow, {"n": 4})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == {"child": 5, "doubled": 10}
    node = out.tasks["child-sum"]
    assert node.status is TaskStatus.SUCCEEDED
    assert node.child_run is not None
    assert node.child_run.startswith(out.run.run_id)
    # One object: the child's result is stored where the parent node's result lives.
    assert node.result_uri.endswith("/child-sum.json")


def test_map_over_a_flow_fans_out_child_runs(backend: Any) -> None:
    out = backend.run(map_subflow, {"xs": [1, 2, 3]})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == [11, 12, 13]
    children = {out.tasks[f"child-sum[{i}]"].child_run for i in range(3)}
    assert len(children) == 3


def test_a_failed_subflow_fails_its_node_and_the_parent(backend: Any) -> None:
    out = backend.run(subflow_fails, {"x": 7})
    assert out.status is RunStatus.FAILED
    node = out.tasks["child-fails"]
    assert node.status is TaskStatus.FAILED
    assert node.error is not None
    assert node.error.type == "SubflowFailed"
    assert "no 7 today" in node.error.message
    assert out.tasks["double"].status is TaskStatus.SKIPPED


@pytest.mark.emulator
def test_cancelling_the_parent_cancels_its_child_run_on_the_stack(dev: Any) -> None:
    from orchestrator.local import cancel_run, follow, stack_runtime, submit
    from tests.flows.subflows import subflow_naps

    rt = stack_runtime()
    run_id = submit(rt, subflow_naps, {"seconds": 30})
    deadline = time.monotonic() + 60
    child = None
    while child is None and time.monotonic() < deadline:
        snap = rt.state.load(run_id, ["child-naps"])
        node = snap.tasks.get("child-naps") if snap else None
        child = node.child_run if node else None
        time.sleep(0.2)
    assert child is not None, "the parent's node never started its child run"
    cancel_run(rt, run_id, "stop")
    assert follow(rt, run_id, timeout=30).run.status is RunStatus.CANCELLED
    assert follow(rt, child, timeout=30).run.status is RunStatus.CANCELLED
