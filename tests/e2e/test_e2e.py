"""The end-to-end behaviours, on every backend (`--backend memory|emulator|all`)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from examples.diamond import diamond
from examples.map_reduce import map_reduce
from examples.sample_flow import sample_flow
from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows import basic

RECORDS = '[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]'


def test_sample_flow(backend: Any) -> None:
    out = backend.run(
        sample_flow,
        {"json_data": RECORDS, "bucket_name": "demo", "filename": f"{backend.name}.csv"},
    )
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == f"gs://demo/{backend.name}.csv"
    for task in out.tasks.values():
        assert task.status is TaskStatus.SUCCEEDED
        assert task.result_uri is not None
        assert task.result_uri.startswith("gs://kumoflow-results/runs/")
        (attempt,) = task.attempts
        assert attempt.worker
        assert attempt.started_at is not None
        assert attempt.ended_at is not None
        assert attempt.started_at <= attempt.ended_at


def test_diamond(backend: Any) -> None:
    out = backend.run(diamond, {"n": 4})
    assert out.value == {"total": 10, "squares": 30}


def test_map_with_fan_in_100_wide(backend: Any) -> None:
    out = backend.run(map_reduce, {"items": list(range(100)), "factor": 2}, timeout=120)
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == 2 * sum(range(100))
    assert len(out.tasks) == 101
    assert all(len(t.attempts) == 1 for t in out.tasks.values())


def test_async_tasks_and_structured_results(backend: Any) -> None:
    assert backend.run(basic.async_and_map, {"items": [1, 2, 3]}).value == {"sum": 12, "async": 13}


def test_retries_then_success(backend: Any, tmp_path: Path) -> None:
    counter, after = tmp_path / "c", tmp_path / "a"
    out = backend.run(
        basic.retrying, {"counter": str(counter), "failures": 2, "after_counter": str(after)}
    )
    assert out.value == "OK AFTER 3"
    flaky = out.tasks["flaky"]
    assert flaky.attempt == 3
    starts = [a.started_at for a in flaky.attempts]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]  # type: ignore[operator]
    if backend.realtime:  # the sweep fires within a tick; never early
        assert 1.0 <= gaps[0] < 3.0
        assert 2.0 <= gaps[1] < 4.0
    else:
        assert gaps == [1.0, 2.0]


def test_retries_exhausted_fail_and_skip_downstream(backend: Any, tmp_path: Path) -> None:
    counter, after = tmp_path / "c", tmp_path / "a"
    out = backend.run(
        basic.retrying_short, {"counter": str(counter), "failures": 2, "after_counter": str(after)}
    )
    assert out.status is RunStatus.FAILED
    assert out.run.error is not None
    assert out.run.error.task == "flaky-once-only"
    assert "flaky failure 2" in out.run.error.message
    assert out.tasks["after"].status is TaskStatus.SKIPPED
    assert not after.exists()


def test_result_json_cannot_carry(backend: Any) -> None:
    out = backend.run(basic.returns_a_set, {})
    assert out.status is RunStatus.FAILED
    assert out.run.error is not None
    assert "JSON cannot carry" in out.run.error.message
    assert out.tasks["not-json"].attempt == 1  # not retried: it would fail the same way


@pytest.mark.parametrize("kind", ["value", "conn"])
def test_retry_on_filters(backend: Any, kind: str) -> None:
    out = backend.run(basic.picky_flow, {"kind": kind})
    assert out.tasks["picky"].attempt == (1 if kind == "value" else 4)


def test_cache_key_reuses_a_fresh_result(backend: Any, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    first = backend.run(basic.cached, {"x": 7, "counter": str(counter)})
    again = backend.run(basic.cached, {"x": 7, "counter": str(counter)})
    other = backend.run(basic.cached, {"x": 8, "counter": str(counter)})
    assert (first.value, again.value, other.value) == (49, 49, 64)
    assert counter.stat().st_size == 2  # the second run reused the first's result
