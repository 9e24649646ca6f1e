"""branch and switch on every backend: the branch not taken ends SKIPPED (BranchNotTaken), the
call's result is the taken branch's, and a failure inside the taken branch fails the run."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows.branching import branch_fails, branching, switching


def _states(out: Any) -> dict[str, str]:
    return {k: t.status.value for k, t in out.tasks.items()}


def test_branch_runs_the_taken_side_and_skips_the_other(backend: Any) -> None:
    big = backend.run(branching, {"n": 20})
    assert big.status is RunStatus.SUCCEEDED
    assert big.value == "*big*"
    assert _states(big) == {
        "is-big": "SUCCEEDED",
        "branch": "SUCCEEDED",
        "label": "SUCCEEDED",
        "decorate": "SUCCEEDED",
        "label-2": "SKIPPED",
        "branch-result": "SUCCEEDED",
    }
    skipped = big.tasks["label-2"].error
    assert skipped is not None
    assert skipped.type == "BranchNotTaken"
    assert skipped.message == (
        "not run: branch 'otherwise' of 'branch' was not taken (it chose 'then')"
    )
    small = backend.run(branching, {"n": 1})
    assert small.status is RunStatus.SUCCEEDED
    assert small.value == "small"
    assert small.tasks["label"].status is TaskStatus.SKIPPED
    assert small.tasks["decorate"].status is TaskStatus.SKIPPED  # deeper in the branch
    assert all(
        small.tasks[k].error.type == "BranchNotTaken"  # type: ignore[union-attr]
        for k in ("label", "decorate")
    )


@pytest.mark.parametrize(
    ("kind", "value", "ran"),
    [("csv", "comma", "label"), ("tsv", "tab", "label-2"), ("xml", "unknown", "label-3")],
)
def test_switch_runs_the_matching_case_or_the_default(
    backend: Any, kind: str, value: str, ran: str
) -> None:
    out = backend.run(switching, {"kind": kind})
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == value
    labels = {k: t.status for k, t in out.tasks.items() if k.startswith("label")}
    assert labels == {
        k: TaskStatus.SUCCEEDED if k == ran else TaskStatus.SKIPPED
        for k in ("label", "label-2", "label-3")
    }


def test_a_failure_in_the_taken_branch_fails_the_run(backend: Any) -> None:
    out = backend.run(branch_fails, {"n": 20})
    assert out.status is RunStatus.FAILED
    assert out.tasks["explode"].status is TaskStatus.FAILED
    assert out.tasks["label"].status is TaskStatus.SKIPPED
    assert out.tasks["branch-result"].status is TaskStatus.SKIPPED
    assert out.run.error is not None
    assert out.run.error.task == "explode"
