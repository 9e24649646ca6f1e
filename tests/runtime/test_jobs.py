"""`runtime="job"` tasks in memory: the worker starts an execution and parks the attempt; the
execution's entrypoint runs the body on the worker's path under the claim's token; the check
derives the attempt's end from the execution's state and the stored result; a cancel stops it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from orchestrator import task
from orchestrator.adapters import MemoryBus, MemoryJobs, MemoryStore, VirtualClock
from orchestrator.contracts import (
    OutboxEntry,
    RunRequested,
    RunStatus,
    TaskRequested,
    TaskRuntime,
    TaskStatus,
)
from orchestrator.engine import CancelRun
from orchestrator.errors import FlowDefinitionError
from orchestrator.runtime import (
    JobExecutionFailed,
    Runtime,
    advance,
    error_info,
    memory_runtime,
    run_job_attempt,
    run_task,
    start_run,
    tick,
)
from orchestrator.testing import Backend
from tests.flows import jobs


def _plain() -> int:
    return 1


def _runtime() -> tuple[Runtime, MemoryStore, MemoryBus, VirtualClock, MemoryJobs]:
    store, bus, clock = MemoryStore(), MemoryBus(), VirtualClock()
    bus.record = True
    rt = memory_runtime(clock=clock, functions=jobs.long_flow.functions(), store=store, bus=bus)
    held = MemoryJobs()  # executions stay RUNNING until the test runs them
    rt = replace(rt, jobs=held)
    store.put_flow(jobs.long_flow.spec)
    return rt, store, bus, clock, held


def _launched(rt: Runtime, bus: MemoryBus) -> TaskRequested:
    """Run `prepare`, then hand `long-sum`'s request to the worker: it parks on a job."""
    start_run(rt, RunRequested(flow="jobs-long", params={"n": 4}), run_id="r")
    (first,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    done = run_task(rt, first)
    assert done is not None
    advance(rt, "r", done)
    (req,) = [
        e.data
        for _, e in bus.published
        if isinstance(e.data, TaskRequested) and e.data.key == "long-sum"
    ]
    bus.published.clear()
    assert run_task(rt, req) is None  # parked: no function waits for the job
    return req


def _checks(store: MemoryStore, clock: VirtualClock) -> list[OutboxEntry]:
    return [e for e in store.due(clock.now() + timedelta(days=2)) if e.kind == "check"]


def _ends(bus: MemoryBus) -> list[str]:
    return [
        e.type.rsplit(".", 1)[1]
        for _, e in bus.published
        if e.type.endswith(("succeeded", "failed"))
    ]


def test_the_decorator_takes_the_enum_or_its_value_and_refuses_others() -> None:
    assert jobs.long_sum.options.runtime is TaskRuntime.JOB
    assert jobs.prepare.options.runtime is TaskRuntime.FUNCTION
    assert task(runtime=TaskRuntime.JOB)(_plain).options.runtime is TaskRuntime.JOB
    assert jobs.prepare.with_options(runtime="job").options.runtime is TaskRuntime.JOB
    with pytest.raises(FlowDefinitionError, match="runtime must be one of 'function', 'job'"):
        task(runtime="vm")(_plain)


def test_the_worker_starts_an_execution_with_the_attempts_identity_and_parks() -> None:
    rt, store, bus, clock, held = _runtime()
    req = _launched(rt, bus)
    ((name, env),) = held.running().items()
    snap = store.load("r", ["long-sum"])
    assert snap is not None
    record = snap.tasks["long-sum"]
    last = record.attempts[-1]
    assert record.status is TaskStatus.RUNNING
    assert env == {
        "KUMOFLOW_RUN_ID": "r",
        "KUMOFLOW_TASK_KEY": "long-sum",
        "KUMOFLOW_ATTEMPT": str(req.attempt),
        "KUMOFLOW_TOKEN": last.token,
    }
    assert last.execution == name  # `runs show` names it
    (check,) = _checks(store, clock)
    assert check.detail["handle"] == {"execution": name, "logs": None}
    assert _ends(bus) == []


def test_the_execution_runs_the_body_and_reports_under_the_token() -> None:
    rt, store, bus, clock, held = _runtime()
    _launched(rt, bus)
    ((name, env),) = held.running().items()
    assert run_job_attempt(rt, env) == 0
    held.finish(name, 0)
    (done,) = [e.data for _, e in bus.published if e.type.endswith("task.succeeded")]
    snap = store.load("r", ["long-sum"])
    assert snap is not None
    assert done.token == snap.tasks["long-sum"].attempts[-1].token
    assert rt.blobs.get(done.result_uri) == b'{"sum":15,"in_job":false}'
    assert snap.tasks["long-sum"].attempts[-1].worker == f"job:{rt.worker_id}/{done.token[:8]}"
    # A second execution of the same attempt (a platform retry) does not run its body again.
    assert run_job_attempt(rt, env) == 0
    assert len([e for _, e in bus.published if e.type.endswith("task.succeeded")]) == 1
    advance(rt, "r", done)
    clock.sleep(5)
    tick(rt)
    assert _checks(store, clock) == []  # the check saw it was no longer parked


def test_an_execution_that_stored_its_result_and_died_is_completed_by_the_check() -> None:
    rt, _, bus, clock, held = _runtime()
    _launched(rt, bus)
    ((name, env),) = held.running().items()
    run_job_attempt(rt, env)
    bus.published.clear()  # its report was lost with it
    held.finish(name, 137, "failed: the container was killed")
    clock.sleep(5)
    tick(rt)
    assert _ends(bus) == ["succeeded"]


def test_an_execution_that_died_without_a_result_fails_the_attempt_with_its_message() -> None:
    rt, _, bus, clock, held = _runtime()
    _launched(rt, bus)
    ((name, _),) = held.running().items()
    held.finish(name, 1, "failed: Task long-sum-task0 failed with exit code 1.")
    clock.sleep(5)
    tick(rt)
    (failed,) = [e.data for _, e in bus.published if e.type.endswith("task.failed")]
    assert failed.error.type == error_info(JobExecutionFailed("x")).type
    assert f"job execution {name} failed: Task long-sum-task0 failed" in failed.error.message


def test_a_cancelled_run_cancels_its_execution_and_the_execution_does_nothing() -> None:
    rt, store, bus, clock, held = _runtime()
    _launched(rt, bus)
    ((name, env),) = held.running().items()
    advance(rt, "r", CancelRun("operator"))
    clock.sleep(5)
    tick(rt)
    assert held.cancelled(name)
    assert _checks(store, clock) == []
    bus.published.clear()
    assert run_job_attempt(rt, env) == 0  # a late start: its token is stale
    assert _ends(bus) == []


def test_job_flows_run_on_every_backend(backend: Backend) -> None:
    outcome = backend.run(jobs.long_flow, {"n": 4, "seconds": 0.0}, timeout=120)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.run.error
    assert outcome.value == "sum=15"
    (attempt,) = outcome.tasks["long-sum"].attempts
    assert attempt.execution is not None


def test_a_failing_job_body_is_retried_as_the_task_says(backend: Backend) -> None:
    outcome = backend.run(jobs.failing_flow, {}, timeout=120)
    assert outcome.status is RunStatus.FAILED
    attempts = outcome.tasks["job-fails"].attempts
    assert [a.status for a in attempts] == [TaskStatus.FAILED, TaskStatus.FAILED]
    assert all(a.error and a.error.message == "the job's body failed" for a in attempts)
