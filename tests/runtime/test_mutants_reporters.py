"""The reporters of one attempt agree: a worker and a duplicate request that finds the result
its dead worker stored publish the same completion, under the same event id
(`{run}/{key}/{attempt}/{verdict}`), one id per attempt."""

from __future__ import annotations

from orchestrator import flow, task
from orchestrator.adapters import VirtualClock
from orchestrator.contracts import (
    Envelope,
    Run,
    RunRequested,
    RunStatus,
    TaskFailed,
    TaskRequested,
    TaskSucceeded,
    TriggerInfo,
    TriggerKind,
)
from orchestrator.runtime import memory_runtime, run_task, start_run
from tests.runtime.pool import Driver, PoolBus

CALLS: list[int] = []


@task(name="flaky", retries=1, retry_delay_seconds=5)
def flaky(x: int) -> int:
    CALLS.append(x)
    if len(CALLS) == 1:
        raise ConnectionError("first attempt fails")
    return x * 2


@flow(name="one-flaky")
def one_flaky(x: int) -> int:
    return flaky(x)


def _driver() -> Driver:
    CALLS.clear()
    bus = PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=one_flaky.functions(), bus=bus)
    rt.flows.put_flow(one_flaky.spec)
    start_run(rt, RunRequested(flow="one-flaky", params={"x": 21}), run_id="r")
    return Driver(rt, bus)


def _completions(d: Driver) -> list[Envelope]:
    return [
        e
        for topic, e in d.bus.published
        if topic == d.rt.topics.events and isinstance(e.data, TaskSucceeded | TaskFailed)
    ]


def test_each_attempt_reports_under_its_own_id_naming_attempt_and_verdict() -> None:
    d = _driver()
    d.settle()
    snap = d.rt.state.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    # A request delivered twice may report twice: under one id per attempt and verdict.
    ids = list(dict.fromkeys(e.id for e in _completions(d)))
    assert ids == ["r/flaky/1/failed", "r/flaky/2/succeeded"]


def test_a_duplicate_request_reports_a_dead_workers_stored_result_under_the_same_id() -> None:
    d = _driver()
    CALLS.append(0)  # the first attempt succeeds
    request = next(e for _, e in d.bus.pool if isinstance(e.data, TaskRequested))
    assert isinstance(request.data, TaskRequested)
    # The worker ran and stored, then its completion's publish was lost (it died).
    d.bus.fail(lambda topic, e: isinstance(e.data, TaskSucceeded))
    d.bus.pool.clear()
    assert not d.deliver(d.rt.topics.tasks, request)
    assert _completions(d) == []
    # Pub/Sub delivers the request again: the claim is taken, the result stored.
    outcome = run_task(d.rt, request.data)
    assert isinstance(outcome, TaskSucceeded)
    sent = _completions(d)
    assert [e.id for e in sent] == ["r/flaky/1/succeeded"]
    assert sent[0].data == outcome
    assert outcome.result_uri == d.rt.task_result_uri(d.rt.plan_of(_run(d)), "r", "flaky")
    d.drain()
    assert _run(d).status is RunStatus.SUCCEEDED


def _run(d: Driver) -> Run:
    snap = d.rt.state.load("r")
    assert snap is not None
    return snap.run


def test_a_request_for_a_run_that_has_not_begun_runs_nothing() -> None:
    """The run exists (its start died before moving it to RUNNING): a request for its root,
    forged or reordered, claims nothing and runs no user code; the start, repeated, runs it."""
    CALLS.clear()
    CALLS.append(0)  # the first attempt succeeds
    bus = PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=one_flaky.functions(), bus=bus)
    version = rt.flows.put_flow(one_flaky.spec)
    created = Run(
        run_id="r",
        flow="one-flaky",
        flow_version=version,
        params={"x": 21},
        created_at=rt.clock.now(),
        trigger=TriggerInfo(kind=TriggerKind.API, source="test"),
    )
    assert rt.state.create_run(created)
    request = TaskRequested(run_id="r", flow_version=version, key="flaky", attempt=1)
    assert run_task(rt, request) is None
    assert CALLS == [0]
    snap = rt.state.load("r")
    assert snap is not None
    assert (snap.run.status, snap.tasks) == (RunStatus.PENDING, {})
    start_run(rt, RunRequested(flow="one-flaky", params={"x": 21}), run_id="r")
    Driver(rt, bus).drain()
    assert _run(Driver(rt, bus)).status is RunStatus.SUCCEEDED
    assert CALLS == [0, 21]
