"""Nothing off the wire is trusted: result locations are derived, the serializer comes from the
plan, a completion must carry the current claim's token, and stored strings are bounded."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

from orchestrator import flow, task
from orchestrator.adapters import MemoryBus, MemoryStore, VirtualClock
from orchestrator.contracts import (
    MAX_MESSAGE_CHARS,
    ErrorInfo,
    RunRequested,
    RunStatus,
    TaskFailed,
    TaskRequested,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.errors import BadInputError
from orchestrator.runtime import Runtime, advance, memory_runtime, run_task, start_run

T = datetime(2026, 1, 1, tzinfo=UTC)
UNPICKLED: list[str] = []


class Trap:
    """Unpickling this runs code: the test fails if anything ever does."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (UNPICKLED.append, ("code ran",))


@task(name="produce")
def produce() -> dict[str, int]:
    return {"n": 1}


@task(name="consume")
def consume(value: dict[str, int]) -> int:
    return value["n"] + 1


@flow(name="trusting")
def trusting() -> int:
    return consume(produce())


def _started() -> tuple[Runtime, MemoryStore, MemoryBus]:
    store, bus = MemoryStore(), MemoryBus()
    bus.record = True
    rt = memory_runtime(clock=VirtualClock(), functions=trusting.functions(), store=store, bus=bus)
    store.put_flow(trusting.spec)
    start_run(rt, RunRequested(flow="trusting"), run_id="r")
    return rt, store, bus


def _requests(bus: MemoryBus) -> list[TaskRequested]:
    return [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]


def _claimed_token(store: MemoryStore, key: str) -> str:
    snap = store.load("r", [key])
    assert snap is not None
    token = snap.tasks[key].attempts[-1].token
    assert token is not None
    return token


@pytest.mark.parametrize(
    "uri",
    [
        "gs://attacker/x.json",
        "gs://kumoflow-results/runs/r/produce.pickle",
        "gs://kumoflow-results/runs/other-run/produce.json",
    ],
)
def test_a_completion_naming_any_other_location_is_rejected_and_changes_nothing(uri: str) -> None:
    rt, store, bus = _started()
    (req,) = _requests(bus)
    # Claim it as a worker would, but report a location of the sender's choosing.
    from orchestrator.engine import claim, claimable
    from orchestrator.ports import Commit

    snap = store.load("r", [req.key])
    assert snap is not None
    record = claimable(snap.run, rt.plan_of(snap.run), req.key, snap.tasks.get(req.key), 1, T)
    assert record is not None
    taken = claim(record, 1, "tok", "w", T, 60)
    assert taken is not None
    store.commit(Commit(run_id="r", tasks=[(taken, snap.etags.get(req.key))]))
    before = store.load("r")
    forged = TaskSucceeded(
        run_id="r", key=req.key, attempt=1, token="tok", result_uri=uri, worker="w",
        started_at=T, ended_at=T,
    )  # fmt: skip
    with pytest.raises(BadInputError, match="can only be at gs://kumoflow-results/runs/r/produce"):
        advance(rt, "r", forged)
    assert store.load("r") == before
    assert len(_requests(bus)) == 1  # nothing downstream was dispatched


def test_pickle_bytes_at_a_json_tasks_location_are_never_unpickled() -> None:
    rt, store, bus = _started()
    (req,) = _requests(bus)
    plan = rt.plan(store.load("r", []).run.flow_version, {})  # type: ignore[union-attr]
    # Someone with bucket access plants a pickle where produce's (JSON) result belongs.
    rt.blobs.put(rt.task_result_uri(plan, "r", "produce"), pickle.dumps(Trap()), "x")
    outcome = run_task(rt, req)  # produce runs; its write-once put finds the planted object
    assert isinstance(outcome, TaskSucceeded)
    advance(rt, "r", outcome)
    (_, downstream) = _requests(bus)
    consumed = run_task(rt, downstream)
    assert isinstance(consumed, TaskFailed)  # JSON cannot read it: a clear failure, no code ran
    assert UNPICKLED == []


def test_a_completion_for_an_attempt_no_worker_claimed_changes_nothing() -> None:
    rt, store, bus = _started()
    (req,) = _requests(bus)
    plan = rt.plan(store.load("r", []).run.flow_version, {})  # type: ignore[union-attr]
    before = store.load("r")
    unclaimed = TaskSucceeded(
        run_id="r", key=req.key, attempt=1, token="guess",
        result_uri=rt.task_result_uri(plan, "r", req.key), worker="w", started_at=T, ended_at=T,
    )  # fmt: skip
    assert advance(rt, "r", unclaimed) is False
    assert store.load("r") == before


def test_a_huge_error_message_is_stored_clipped() -> None:
    rt, store, bus = _started()
    (req,) = _requests(bus)
    outcome = run_task(rt, req)
    assert isinstance(outcome, TaskSucceeded)
    # A worker of ours reports a failure whose message is 300 KB (user code chose it).
    token = _claimed_token(store, req.key)
    huge = ErrorInfo(type="builtins.ValueError", message="x" * 300_000, traceback="t" * 300_000)
    assert len(huge.message) <= MAX_MESSAGE_CHARS
    assert huge.message.endswith("chars]")
    failed = TaskFailed(
        run_id="r", key=req.key, attempt=1, token=token, error=huge, retryable=False,
        worker="w", started_at=T, ended_at=T,
    )  # fmt: skip
    advance(rt, "r", failed)
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.FAILED
    record = snap.tasks[req.key]
    assert record.status is TaskStatus.FAILED
    assert len(record.model_dump_json()) < 30_000  # one attempt: error + traceback, twice


def test_a_gate_reporting_a_choice_it_does_not_have_is_rejected() -> None:
    from tests.flows.branching import branching

    store, bus = MemoryStore(), MemoryBus()
    bus.record = True
    rt = memory_runtime(clock=VirtualClock(), functions=branching.functions(), store=store, bus=bus)
    store.put_flow(branching.spec)
    start_run(rt, RunRequested(flow="branching", params={"n": 20}), run_id="r")
    (first,) = _requests(bus)
    done = run_task(rt, first)
    assert done is not None
    advance(rt, "r", done)
    gate_request = next(r for r in _requests(bus) if r.key == "branch")
    outcome = run_task(rt, gate_request)
    assert isinstance(outcome, TaskSucceeded)
    assert outcome.choice == "then"
    forged = outcome.model_copy(update={"choice": "everything"})
    with pytest.raises(BadInputError, match="reports choice 'everything'; it chooses between"):
        advance(rt, "r", forged)
    assert advance(rt, "r", outcome) is True  # the true report still applies
