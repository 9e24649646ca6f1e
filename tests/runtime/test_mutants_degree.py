"""A branch not taken is no failure to the counters: a run whose untaken branch ends in a
leaf finishes on its per-task path, without the whole-run read that settling failures needs
(an event costs O(its task's degree), never O(the run)). And a required parameter that was
not given is refused by name, before anything is stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from orchestrator import branch, flow, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import RunRequested, RunStatus, TaskStatus
from orchestrator.errors import ParameterError
from orchestrator.ports import Snapshot
from orchestrator.runtime import memory_runtime, read_flow_result, start_run
from tests.flows.branching import is_big, label
from tests.runtime.pool import Driver, PoolBus


@task(name="note")
def note(text: str) -> str:
    return text


def _big_with_a_note() -> Any:
    note("big")  # a leaf inside the branch: nothing reads it
    return label("big")


@flow(name="branch-with-a-leaf")
def branch_with_a_leaf(n: int) -> Any:
    return branch(is_big(n), then=_big_with_a_note, otherwise=lambda: label("small"))


class CountingLoads(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.whole = 0

    def load(self, run_id: str, keys: Sequence[str] | None = None) -> Snapshot | None:
        self.whole += keys is None
        return super().load(run_id, keys)


def test_a_run_whose_untaken_branch_ends_in_a_leaf_finishes_without_reading_the_run() -> None:
    store, bus = CountingLoads(), PoolBus()
    functions = branch_with_a_leaf.functions()
    rt = memory_runtime(clock=VirtualClock(), functions=functions, store=store, bus=bus)
    store.put_flow(branch_with_a_leaf.spec)
    start_run(rt, RunRequested(flow="branch-with-a-leaf", params={"n": 3}), run_id="b")
    Driver(rt, bus).drain()
    assert store.whole == 0
    snap = store.load("b")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    assert read_flow_result(rt, rt.plan_of(snap.run), snap.run) == "small"
    untaken = [k for k, t in snap.tasks.items() if t.status is TaskStatus.SKIPPED]
    assert sorted(untaken) == ["label", "note"]
    assert "note" in rt.plan_of(snap.run).leaves


@task(name="show")
def show(value: object) -> str:
    return repr(value)


@flow(name="needs-a-value")
def needs_a_value(value: object, label: str = "x") -> str:
    return show(value)


def test_a_required_parameter_not_given_is_refused_by_name() -> None:
    rt = memory_runtime(clock=VirtualClock(), functions=needs_a_value.functions())
    rt.flows.put_flow(needs_a_value.spec)
    with pytest.raises(ParameterError, match="needs parameter 'value' \\(none was given\\)"):
        start_run(rt, RunRequested(flow="needs-a-value", params={"label": "y"}), run_id="p")
    assert rt.state.load("p", []) is None
