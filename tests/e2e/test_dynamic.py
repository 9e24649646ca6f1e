"""Run-time maps on every backend: `.map` over a task's result, part of one, another run-time
map's results; empty lists, a flow returning one, what cannot be mapped, allowed failures."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows.dynamic import (
    failures_allowed,
    list_process_summarize,
    map_a_part,
    nested,
    not_a_list,
    over_pickled,
    returns_map,
    two_maps,
)


@pytest.mark.parametrize("count", [0, 1, 5])
def test_list_then_process_each_then_summarize(backend: Any, count: int) -> None:
    out = backend.run(list_process_summarize, {"count": count, "extra": 1})
    assert out.status is RunStatus.SUCCEEDED
    expected = [len(f"f{i}.csv") + 1 for i in range(count)]
    assert out.value == {"count": count, "total": sum(expected)}
    assert out.tasks["measure"].status is TaskStatus.SUCCEEDED  # the map itself
    assert sorted(k for k in out.tasks if k.startswith("measure[")) == sorted(
        f"measure[{i}]" for i in range(count)
    )


def test_map_over_part_of_a_result(backend: Any) -> None:
    out = backend.run(map_a_part, {"count": 4})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == {"count": 4, "total": 60}


def test_nested_run_time_maps(backend: Any) -> None:
    out = backend.run(nested, {"count": 4})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == {"count": 4, "total": 2 * sum(len(f"f{i}.csv") for i in range(4))}
    assert out.tasks["double[3]"].status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize("count", [0, 3])
def test_a_flow_returns_a_run_time_map(backend: Any, count: int) -> None:
    out = backend.run(returns_map, {"count": count})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == [len(f"f{i}.csv") for i in range(count)]


def test_mapping_over_what_is_not_a_list_fails_the_map_naming_it(backend: Any) -> None:
    out = backend.run(not_a_list, {"count": 3})
    assert out.status is RunStatus.FAILED
    assert out.tasks["listing"].status is TaskStatus.SUCCEEDED
    failed = out.tasks["size-of"]
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None
    assert failed.error.type == "MapError"
    assert failed.error.message == (
        "task 'size-of' maps over result.n of task 'listing', which is not a list"
    )
    assert out.tasks["summarize"].status is TaskStatus.SKIPPED


def test_failures_of_a_run_time_map_allowed_downstream(backend: Any) -> None:
    out = backend.run(failures_allowed, {"count": 4})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == {"count": 4, "ok": 3}
    assert out.tasks["fragile[2]"].status is TaskStatus.FAILED


def test_the_process_folder_example_maps_over_its_manifest_at_run_time() -> None:
    from examples.process_folder import process_folder

    nodes = {n.key: n for n in process_folder.spec.nodes}
    assert nodes["count-lines"].map_over == ("uri",)
    assert nodes["count-lines"].args["uri"].model_dump()["kind"] == "path"  # manifest["files"]
    assert [t.kind for t in process_folder.spec.triggers] == ["gcs"]


def test_a_thousand_wide_run_time_map(backend: Any) -> None:
    out = backend.run(list_process_summarize, {"count": 1000}, timeout=600)
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == {"count": 1000, "total": sum(len(f"f{i}.csv") for i in range(1000))}


def test_a_run_time_map_over_a_pickled_list_gets_its_elements_as_pickled(backend: Any) -> None:
    out = backend.run(over_pickled, {"count": 4})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == {"count": 4, "total": sum(len(f"p{i}") + i for i in range(4))}


def test_maps_over_two_parts_of_one_result_and_a_nested_one(backend: Any) -> None:
    out = backend.run(two_maps, {"count": 3})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == {
        "a": {"count": 3, "total": 6},
        "b": {"count": 4, "total": 12},
        "a-again": {"count": 3, "total": 12},
    }


def test_a_run_time_map_wider_than_the_default_maximum_fails_naming_the_limit(
    backend: Any,
) -> None:
    out = backend.run(list_process_summarize, {"count": 10_001}, timeout=120)
    assert out.status is RunStatus.FAILED
    failed = out.tasks["measure"]
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None
    assert failed.error.type == "MapError"
    assert failed.error.message == (
        "task 'measure' maps over result of task 'names', a list of 10001 elements: more than "
        "the maximum map width, 10000. Raise KUMOFLOW_MAX_MAP_WIDTH (default 10000) where the "
        "orchestrator runs, or map over batches of the list"
    )
    assert len(out.tasks) == 3  # names, measure, summarize: no child of the map was made
