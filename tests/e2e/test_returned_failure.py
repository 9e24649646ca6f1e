"""A flow that returns the result of a task whose failure another task ran past
(`allow_failure`) fails, as in Prefect: the result it returns does not exist. Inside a subflow,
the parent's node fails with it."""

from __future__ import annotations

from orchestrator.contracts import RunStatus
from orchestrator.testing import Backend
from tests.flows.prefect_features import (
    allows_a_skip_behind_a_failure,
    calls_returns_allowed_failure,
    returns_allowed_failure,
)


def test_returning_a_tolerated_failure_fails_the_run(backend: Backend) -> None:
    out = backend.run(returns_allowed_failure, {"x": 3})
    assert out.status is RunStatus.FAILED
    assert out.run.error is not None
    assert out.run.error.message == "broken 3"
    assert out.tasks["cleanup"].status.value == "SUCCEEDED"  # the tolerant task still ran


def test_a_subflow_returning_a_tolerated_failure_fails_its_parent(backend: Backend) -> None:
    out = backend.run(calls_returns_allowed_failure, {"x": 4})
    assert out.status is RunStatus.FAILED
    assert out.run.error is not None
    assert out.run.error.type == "SubflowFailed"
    assert "broken 4" in out.run.error.message


def test_a_failure_behind_an_allowed_skip_is_run_past(backend: Backend) -> None:
    """breaks fails, passes_on is skipped, cleanup runs past the skip (allow_failure) and
    succeeds: the flow handled the failure, so the run succeeds (as the per-task path and a
    later whole-run recheck both judge it)."""
    out = backend.run(allows_a_skip_behind_a_failure, {"x": 5})
    assert out.status is RunStatus.SUCCEEDED, out.run.error
    assert out.value == "cleaned up after a failure"
    assert out.tasks["breaks"].status.value == "FAILED"
    assert out.tasks["passes_on"].status.value == "SKIPPED"
