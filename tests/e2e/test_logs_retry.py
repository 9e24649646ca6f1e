"""Task logs, resuming a failed run, and redriving a dead letter, on every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.contracts import RunStatus, TaskStatus
from orchestrator.local import run_head, run_logs
from tests.flows.observed import noisy_flow, observed


def _messages(backend: Any, run_id: str, **kw: Any) -> list[tuple[str, int, str, str]]:
    run = run_head(backend.rt, run_id)
    return [
        (line.key, line.attempt, line.entry["stream"], line.entry["message"])
        for line in run_logs(backend.rt, run, **kw)
    ]


def test_logs_of_a_task_that_prints_logs_and_fails(backend: Any, tmp_path: Path) -> None:
    params = {"n": 1, "counter": str(tmp_path / "c"), "marker": str(tmp_path / "m")}
    out = backend.run(observed, params)
    assert out.status is RunStatus.FAILED
    chatty = [m[2:] for m in _messages(backend, out.run.run_id, task="chatty")]
    assert ("stdout", "printed 2") in chatty
    assert ("stderr", "on stderr") in chatty
    assert ("log", "logged 2") in chatty
    assert ("log", "a user warning") in chatty
    picky = _messages(backend, out.run.run_id, task="picky", attempt=1)
    assert picky[0] == ("picky", 1, "stdout", "picky got 3")
    key, attempt, stream, text = picky[-1]
    assert (key, attempt, stream) == ("picky", 1, "traceback")
    assert "Traceback (most recent call last)" in text
    assert text.rstrip().endswith(f"ValueError: no marker at {tmp_path / 'm'}")
    # The whole run's logs: every attempt that ran, each entry tagged with its task.
    everything = _messages(backend, out.run.run_id)
    assert {m[0] for m in everything} == {"chatty", "picky"}  # `count` said nothing
    assert _messages(backend, out.run.run_id, task="picky", attempt=2) == []


def test_a_long_log_is_cut_with_a_mark(backend: Any) -> None:
    out = backend.run(noisy_flow, {"lines": 4_000})  # ~400 kB printed
    assert out.status is RunStatus.SUCCEEDED, out.run.error
    lines = _messages(backend, out.run.run_id)
    assert lines[0][3].startswith("line 000000 ")
    assert lines[-1][2] == "kumoflow"
    assert lines[-1][3].startswith("[truncated: ")
    assert 2_000 < len(lines) < 4_000


def test_retry_resumes_a_failed_run_and_reuses_succeeded_results(
    backend: Any, tmp_path: Path
) -> None:
    counter, marker = tmp_path / "c", tmp_path / "m"
    params = {"n": 1, "counter": str(counter), "marker": str(marker)}
    first = backend.run(observed, params)
    assert first.status is RunStatus.FAILED
    assert first.tasks["after"].status is TaskStatus.SKIPPED
    marker.touch()  # the cause is fixed
    again = backend.retry(observed, first.run.run_id)
    assert again.status is RunStatus.SUCCEEDED, again.run.error
    assert again.run.run_id == first.run.run_id  # resumed in place: the next flow attempt
    assert again.run.attempt == first.run.attempt + 1
    assert again.value == 31
    assert counter.read_text() == "1\n"  # `count` did not run again
    assert again.tasks["count"].attempt == 1
    assert again.tasks["chatty"].attempt == 1
    assert [a.status for a in again.tasks["picky"].attempts] == [
        TaskStatus.FAILED,
        TaskStatus.SUCCEEDED,
    ]
    # Both attempts' logs are kept.
    assert [
        m[1] for m in _messages(backend, first.run.run_id, task="picky") if m[2] == "stdout"
    ] == [
        1,
        2,
    ]
