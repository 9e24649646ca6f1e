"""Projections (`obj.bucket`, `res["items"][0]["name"]`) on every backend: resolved where the
consuming task loads its inputs; a path that does not resolve fails that task, naming both."""

from __future__ import annotations

from typing import Any

from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows.projections import (
    allowed_and_genuine_failure,
    clean_up_after_failure,
    map_over_part,
    projection_missing,
    projections,
)

OBJ = {"bucket": "uploads", "name": "in/data.csv", "generation": 7}


def test_parts_of_parameters_and_results_flow_on(backend: Any) -> None:
    out = backend.run(projections, {"obj": OBJ, "prefix": "p"})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == {"where": "gs://uploads/in/data.csv", "first": "P/A", "count": 2}


def test_a_path_that_does_not_resolve_fails_the_consuming_task_naming_it(backend: Any) -> None:
    out = backend.run(projection_missing, {"prefix": "p"})
    assert out.status is RunStatus.FAILED
    assert out.tasks["listing"].status is TaskStatus.SUCCEEDED
    failed = out.tasks["shout"]
    assert failed.status is TaskStatus.FAILED
    assert len(failed.attempts) == 1  # it would fail the same way again: not retried
    assert failed.error is not None
    assert failed.error.type == "orchestrator.errors.ProjectionError"
    assert failed.error.message.startswith(
        "result.items[5].name does not resolve on the result of task 'listing': at "
        "result.items[5], index 5 is out of range for a list of 2"
    )


def test_a_map_over_a_list_inside_a_parameter(backend: Any) -> None:
    out = backend.run(map_over_part, {"batch": {"values": [1, 2, 3], "other": "x"}})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == [2, 4, 6]


def test_allow_failure_runs_past_a_failed_task_and_the_run_succeeds(backend: Any) -> None:
    out = backend.run(clean_up_after_failure, {"x": 1})
    assert out.tasks["breaks"].status is TaskStatus.FAILED
    assert out.tasks["cleanup"].status is TaskStatus.SUCCEEDED
    assert out.status is RunStatus.SUCCEEDED  # its only failure was consumed
    assert out.value == "cleanup: upstream failed"


def test_a_failure_nobody_allows_still_fails_the_run_and_skips_its_child(backend: Any) -> None:
    out = backend.run(allowed_and_genuine_failure, {"x": 1})
    assert out.status is RunStatus.FAILED
    assert out.tasks["cleanup"].status is TaskStatus.SUCCEEDED  # ran past "breaks"
    assert out.tasks["cleanup-2"].status is TaskStatus.SKIPPED  # "breaks-2" was not allowed
    assert out.run.error is not None
    assert out.run.error.task == "breaks-2"  # the run's error is the failure nobody consumed
