"""A flow's result settings reach its tasks unless a task sets its own (as in Prefect), and the
run context is a module (`from orchestrator.context import flow_run, task_run`)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from orchestrator import FlowDefinitionError, flow, task
from orchestrator.adapters import MemoryBlobStore
from orchestrator.runtime import InProcessRunner


@task
def double(x: int) -> int:
    return 2 * x


@task(name="own", result_storage="gs://own-bucket/mine")
def plus_one(x: int) -> int:
    return x + 1


@flow(name="stored-elsewhere", result_storage="gs://other-bucket/prefix")
def stored_elsewhere(x: int) -> int:
    return double(plus_one(x))


@task(result_serializer="json", persist_result=True)
def as_json(x: int) -> int:
    return x


@flow(name="pickled", result_serializer="pickle", persist_result=False)
def pickled(x: int) -> dict[str, int]:
    return {"doubled": double(x), "same": as_json(x)}


@flow(name="plain")
def plain(x: int) -> int:
    return double(x)


def objects(blobs: MemoryBlobStore) -> list[str]:
    return sorted(blobs._blobs)


def run(flow_: Any, params: dict[str, Any]) -> tuple[Any, MemoryBlobStore]:
    blobs = MemoryBlobStore()
    with InProcessRunner(functions=flow_.functions(), blobs=blobs) as runner:
        outcome = runner.run(flow_.spec, params)
    return outcome, blobs


def test_a_flows_result_storage_is_its_tasks_unless_a_task_sets_its_own() -> None:
    outcome, blobs = run(stored_elsewhere, {"x": 3})
    assert outcome.value == 8
    rid = outcome.run.run_id
    assert objects(blobs) == [
        f"gs://other-bucket/prefix/runs/{rid}/double.json",  # the flow's storage
        f"gs://own-bucket/mine/runs/{rid}/own.json",  # its own
    ]
    # The flow returns a task's result: that object is the flow's result too.
    assert outcome.run.result_uri == f"gs://other-bucket/prefix/runs/{rid}/double.json"
    options = {n.key: n.options for n in stored_elsewhere.spec.nodes}
    assert options["double"].result_storage == "gs://other-bucket/prefix"
    assert options["own"].result_storage == "gs://own-bucket/mine"


def test_a_flows_serializer_and_persist_result_are_its_tasks_unless_a_task_sets_its_own() -> None:
    options = {n.key: n.options for n in pickled.spec.nodes}
    assert (options["double"].result_serializer, options["double"].persist_result) == (
        "pickle",
        False,
    )
    assert (options["as_json"].result_serializer, options["as_json"].persist_result) == (
        "json",
        True,
    )
    outcome, blobs = run(pickled, {"x": 4})
    assert outcome.value == {"doubled": 8, "same": 4}
    rid = outcome.run.run_id
    assert objects(blobs) == [
        f"gs://kumoflow-results/runs/{rid}/as_json.json",
        f"gs://kumoflow-results/runs/{rid}/double.pickle",
        f"gs://kumoflow-results/runs/{rid}/result.pickle",  # the flow's own result: as it says
    ]
    assert pickle.loads(blobs.get(f"gs://kumoflow-results/runs/{rid}/double.pickle")) == 8


def test_with_options_sets_or_hands_back_a_result_setting() -> None:
    set_ = double.with_options(result_storage="gs://b/p")
    assert set_.given == frozenset({"result_storage"})
    back = set_.with_options(result_storage=None, result_serializer=None)
    assert back.given == frozenset()
    assert back.options.result_serializer == "json"


def test_a_flow_that_sets_nothing_changes_nothing() -> None:
    (node,) = plain.spec.nodes
    assert (node.options.result_storage, node.options.persist_result) == (None, None)
    assert node.options.result_serializer == "json"


def test_the_run_context_is_a_module() -> None:
    import orchestrator
    import orchestrator.context
    from orchestrator import context
    from orchestrator.context import flow_run, task_run

    assert context is orchestrator.context
    assert context.flow_run is flow_run
    assert context.task_run is task_run
    outcome, _ = run(reads_context, {"x": 2})
    assert outcome.value == {
        "flow": "reads-context",
        "run_id": outcome.run.run_id,
        "task": "reads",
        "key": "reads",
        "run_count": 1,
        "parameters": {"x": 2},
        "same": True,
    }
    # Outside a run: falsy, fields as Prefect's (None, {}, 0); in a flow body: refused.
    assert not flow_run
    assert not task_run
    assert (task_run.id, task_run.parameters, task_run.run_count, flow_run.get()) == (
        None,
        {},
        0,
        None,
    )
    with pytest.raises(AttributeError, match="no field 'nope'"):
        _ = task_run.nope

    def body() -> Any:
        return task_run.id

    with pytest.raises(FlowDefinitionError, match=r"context.task_run read in the body of flow"):
        _ = flow(name="reads-in-body")(body).spec


@task(name="reads")
def reads(x: int) -> dict[str, Any]:
    from orchestrator import context
    from orchestrator.context import flow_run, task_run

    info = task_run.get()
    return {
        "flow": flow_run.flow_name,
        "run_id": flow_run.id,
        "task": task_run.name,
        "key": task_run.task_key,
        "run_count": task_run.run_count,
        "parameters": dict(task_run.parameters),
        "same": info is context.task_run.get() and info.id == task_run.id,
    }


@flow(name="reads-context")
def reads_context(x: int) -> dict[str, Any]:
    return reads(x)
