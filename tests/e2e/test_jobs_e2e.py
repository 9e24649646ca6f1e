"""`runtime="job"` tasks on the local stack: the attempt runs as an execution of the task job
on the fake Cloud Run Admin API (a real subprocess of `python -m orchestrator.functions.job`),
no function waits for it, `runs show` links the execution and its logs, and a cancel stops it."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.contracts import RunStatus, TaskStatus
from orchestrator.engine import CancelRun
from orchestrator.errors import NotFoundError
from orchestrator.local import DevStack
from orchestrator.runtime import advance
from orchestrator.testing import StackBackend
from tests.flows import jobs

pytestmark = pytest.mark.emulator

WORK_S = 20.0


@pytest.fixture
def stack(stack_env: dict[str, str]) -> StackBackend:
    return StackBackend()


def test_a_job_task_runs_20_s_in_an_execution_and_completes_with_its_result(
    stack: StackBackend,
) -> None:
    outcome = stack.run(jobs.long_flow, {"n": 10, "seconds": WORK_S}, timeout=240)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.run.error
    assert outcome.value == "sum=66"
    (attempt,) = outcome.tasks["long-sum"].attempts
    assert attempt.status is TaskStatus.SUCCEEDED
    assert attempt.started_at is not None
    assert attempt.ended_at is not None
    assert (attempt.ended_at - attempt.started_at).total_seconds() >= WORK_S
    job = DevStack.from_env().task_job
    assert (attempt.execution or "").startswith(f"{job}/executions/")
    assert (attempt.worker or "").startswith("job:")  # the execution ran the body
    result = json.loads(stack.rt.blobs.get(outcome.tasks["long-sum"].result_uri or ""))
    assert result == {"sum": 66, "in_job": True}
    # `runs show` names the execution and links its log (the stand-in serves its file).
    shown = CliRunner().invoke(main, ["runs", "show", outcome.run.run_id, "--json"])
    assert shown.exit_code == 0, shown.output
    (row,) = [t for t in json.loads(shown.output)["tasks"] if t["key"] == "long-sum"]
    (history,) = row["history"]
    assert history["execution"] == attempt.execution
    assert history["logs_url"] == attempt.logs_url
    with urllib.request.urlopen(str(attempt.logs_url), timeout=10) as answer:
        assert answer.status == 200
    jobs.marker(outcome.run.run_id).unlink(missing_ok=True)


def test_cancelling_the_run_during_the_job_stops_its_execution(stack: StackBackend) -> None:
    from orchestrator.adapters import run_clients

    run_id = stack.start(jobs.long_flow, {"n": 3, "seconds": WORK_S})
    marker = jobs.marker(run_id)
    deadline = time.monotonic() + 90
    while not marker.exists() or _execution(stack, run_id) is None:
        assert time.monotonic() < deadline, "the job's body never started"
        time.sleep(0.2)
    name = _execution(stack, run_id)
    started = time.monotonic()
    advance(stack.rt, run_id, CancelRun("test"))
    outcome = stack.wait(run_id, timeout=30)
    assert outcome.status is RunStatus.CANCELLED
    _, executions = run_clients()
    while not executions.get_execution(name=name).cancelled_count:
        assert time.monotonic() < deadline, "the execution was never cancelled"
        time.sleep(0.2)
    assert time.monotonic() - started < WORK_S  # stopped, not run out
    assert not Path(f"/proc/{marker.read_text()}").exists()  # the process is gone too
    uri = stack.rt.task_result_uri(stack.rt.plan_of(outcome.run), run_id, "long-sum")
    with pytest.raises(NotFoundError):
        stack.rt.blobs.get(uri)  # the body never finished
    marker.unlink()


def _execution(stack: StackBackend, run_id: str) -> str | None:
    snap = stack.rt.state.load(run_id, ["long-sum"])
    task = snap.tasks.get("long-sum") if snap else None
    return task.attempts[-1].execution if task and task.attempts else None
