"""Deferred tasks: an attempt parks without a waiting worker and the sweeper's checks end it,
under the claim's token; a lost claim or a cancelled run stops the work; a check that cannot
tell backs off without failing the attempt."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from orchestrator.adapters import MemoryBus, MemoryStore, VirtualClock
from orchestrator.contracts import OutboxEntry, RunRequested, TaskFailed, TaskRequested, TaskStatus
from orchestrator.engine import CancelRun
from orchestrator.ports import Commit
from orchestrator.runtime import (
    Runtime,
    advance,
    memory_runtime,
    run_task,
    start_run,
    tick,
)
from orchestrator.sdk import run_in_process
from orchestrator.testing import Backend
from tests.flows import deferred
from tests.flows.deferred import deferred_job


def _runtime() -> tuple[Runtime, MemoryStore, MemoryBus, VirtualClock]:
    store, bus, clock = MemoryStore(), MemoryBus(), VirtualClock()
    bus.record = True
    rt = memory_runtime(clock=clock, functions=deferred_job.functions(), store=store, bus=bus)
    store.put_flow(deferred_job.spec)
    return rt, store, bus, clock


def _parked(rt: Runtime, bus: MemoryBus, need: int, run_id: str = "r") -> TaskRequested:
    start_run(rt, RunRequested(flow="deferred-job", params={"need": need}), run_id=run_id)
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    bus.published.clear()
    assert run_task(rt, req) is None  # parked: no completion yet, and no worker waits
    return req


def _checks(store: MemoryStore, clock: VirtualClock) -> list[OutboxEntry]:
    return [e for e in store.due(clock.now() + timedelta(days=2)) if e.kind == "check"]


def test_a_parked_attempt_is_completed_by_the_sweeper_after_backed_off_checks() -> None:
    rt, store, bus, clock = _runtime()
    _parked(rt, bus, need=4)
    (entry,) = _checks(store, clock)
    assert (entry.key, entry.attempt, entry.detail["poll"]) == ("external-job", 1, 1.0)
    snap = store.load("r", ["external-job"])
    assert snap is not None
    task = snap.tasks["external-job"]
    assert task.status is TaskStatus.RUNNING
    # The lease reaches past the check, so the sweep's lease expiry leaves it alone.
    assert task.lease_until is not None
    assert task.lease_until > entry.due_at
    polls = []
    for _ in range(4):
        clock.sleep(float(entry.detail["poll"]))  # type: ignore[arg-type]
        tick(rt)
        left = _checks(store, clock)
        if not left:
            break
        (entry,) = left
        polls.append(entry.detail["poll"])
    assert polls == [2.0, 4.0, 8.0]  # doubling
    (done,) = [e.data for _, e in bus.published if e.type.endswith("task.succeeded")]
    assert done.token == task.attempts[-1].token  # fenced like a worker's report
    assert rt.blobs.get(done.result_uri) == b'{"job":"j1","polls":4}'


def test_a_check_that_cannot_tell_backs_off_and_leaves_the_attempt_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, store, bus, clock = _runtime()
    _parked(rt, bus, need=3)
    monkeypatch.setattr(deferred, "UNREACHABLE", True)
    clock.sleep(2)
    tick(rt)
    (entry,) = _checks(store, clock)
    assert entry.failures == 1  # the sweep's own backoff, not a failed attempt
    assert entry.due_at > clock.now()
    assert not [e for _, e in bus.published if e.type.endswith(("succeeded", "failed"))]
    monkeypatch.setattr(deferred, "UNREACHABLE", False)
    clock.sleep(60)
    tick(rt)
    (entry,) = _checks(store, clock)
    # It went on where it was; a check that answered starts the backoff of failures afresh.
    assert (entry.failures, entry.detail["handle"]["polls"]) == (0, 1)  # type: ignore[index]


def test_a_check_for_a_claim_that_was_lost_cancels_the_work_and_reports_nothing() -> None:
    rt, store, bus, clock = _runtime()
    deferred.CANCELLED.clear()
    _parked(rt, bus, need=5)
    (entry,) = _checks(store, clock)
    forged = entry.model_copy(update={"detail": {**entry.detail, "token": "someone-else"}})
    store.commit(Commit(run_id="r", outbox_add=[forged]))
    clock.sleep(2)
    tick(rt)
    assert deferred.CANCELLED == ["j1"]
    assert _checks(store, clock) == []
    assert not [e for _, e in bus.published if e.type.endswith(("succeeded", "failed"))]


def test_cancelling_the_run_cancels_the_parked_work_at_its_next_check() -> None:
    rt, store, bus, clock = _runtime()
    deferred.CANCELLED.clear()
    _parked(rt, bus, need=5)
    advance(rt, "r", CancelRun("operator"))
    clock.sleep(2)
    tick(rt)
    assert deferred.CANCELLED == ["j1"]
    assert _checks(store, clock) == []
    snap = store.load("r")
    assert snap is not None
    assert snap.tasks["external-job"].status is TaskStatus.CANCELLED


def test_a_failed_check_fails_the_attempt_and_the_task_retries_as_configured() -> None:
    outcome = run_in_process(deferred_job, {"need": 2, "fail": True}, clock=VirtualClock())
    task = outcome.tasks["external-job"]
    assert [a.status for a in task.attempts] == [TaskStatus.FAILED, TaskStatus.FAILED]
    assert [a.error.message for a in task.attempts if a.error] == [
        "job j1 failed after 2 polls",
        "job j1 failed after 2 polls",
    ]
    assert outcome.run.status.value == "FAILED"


def test_deferred_flows_run_on_every_backend(backend: Backend) -> None:
    outcome = backend.run(deferred_job, {"need": 3}, timeout=60)
    assert outcome.status.value == "SUCCEEDED"
    assert outcome.value == "j1 after 3 polls"
    zero = backend.run(deferred_job, {"need": 0}, timeout=60)
    assert zero.value == "j1 after 0 polls"  # a task that finished inline never parked


def test_a_failed_completion_from_a_check_is_an_ordinary_task_failed() -> None:
    rt, _store, bus, clock = _runtime()
    start_run(rt, RunRequested(flow="deferred-job", params={"need": 1, "fail": True}), run_id="f")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    bus.published.clear()
    assert run_task(rt, req) is None
    clock.sleep(2)
    tick(rt)
    (failed,) = [e.data for _, e in bus.published if isinstance(e.data, TaskFailed)]
    assert (failed.key, failed.attempt, failed.retryable) == ("external-job", 1, True)


class Killed(BaseException):
    """The platform ends the sweeper function at its timeout (nothing in it catches that)."""


class StallingTime:
    """The tick's time in a test: it moves only when a check stalls. `stall` stands for a call
    that hangs (BigQuery's get_job retrying 5xx for 600 s): the tick's wait for that item then
    skips to the item's deadline. Whatever waits for the stalled call (the tick itself, when
    it runs items inline) is ended by `Killed` once released, or after WAIT_S at the latest."""

    WAIT_S = 5.0

    def __init__(self) -> None:
        self.now = 0.0
        self.stalls = 0
        self._stalled = threading.Event()
        self._released = threading.Event()

    def monotonic(self) -> float:
        return self.now

    def wait(self, done: threading.Event, until: float) -> bool:
        while not done.wait(0.01):
            if self._stalled.is_set():
                self._stalled.clear()
                self.now = max(self.now, until)
                return False
        return True

    def stall(self, handle: dict[str, Any]) -> None:
        if handle["need"] != 5:  # only the job that needs 5 polls hangs
            return
        self.stalls += 1
        self._stalled.set()
        self._released.wait(self.WAIT_S)
        raise Killed("the sweeper function's timeout")

    def release(self) -> None:
        self._released.set()


def test_a_check_that_outlives_its_deadline_is_backed_off_and_holds_up_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, store, bus, clock = _runtime()
    _parked(rt, bus, need=5, run_id="r")  # its check is due first: the oldest item
    _parked(rt, bus, need=2, run_id="s")
    time = StallingTime()
    monkeypatch.setattr(deferred, "STALL", time.stall)
    try:
        clock.sleep(2)
        tick(rt, clock=time)
        assert time.stalls == 1
        by_run = {e.run_id: e for e in _checks(store, clock)}
        # The item behind the hung one was checked in the same tick...
        assert by_run["s"].detail["handle"]["polls"] == 1  # type: ignore[index]
        # ...and the hung one backed off: not taken again before its backoff.
        hung = by_run["r"]
        assert (hung.failures, hung.detail["handle"]["polls"]) == (1, 0)  # type: ignore[index]
        assert hung.due_at > clock.now()
        tick(rt, clock=time)
        assert time.stalls == 1
        clock.sleep((hung.due_at - clock.now()).total_seconds())
        tick(rt, clock=time)
        assert time.stalls == 2  # due again: taken again
    finally:
        time.release()
    monkeypatch.setattr(deferred, "STALL", None)
    (hung,) = [e for e in _checks(store, clock) if e.run_id == "r"]
    clock.sleep((hung.due_at - clock.now()).total_seconds())
    tick(rt)
    (after,) = [e for e in _checks(store, clock) if e.run_id == "r"]
    assert (after.failures, after.detail["handle"]["polls"]) == (0, 1)  # type: ignore[index]


def _outage(rt: Runtime, clock: VirtualClock, minutes: int) -> None:
    """The check's API answers 503 for `minutes`; production's sweeper ticks every minute."""
    for _ in range(minutes):
        clock.sleep(60)
        tick(rt)


def test_a_check_api_outage_within_the_budget_keeps_the_attempt_parked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, store, bus, clock = _runtime()
    deferred.CANCELLED.clear()
    _parked(rt, bus, need=2)
    monkeypatch.setattr(deferred, "UNREACHABLE", True)
    _outage(rt, clock, 30)  # far past the parked lease (a check's poll + one lease)
    snap = store.load("r", ["external-job"])
    assert snap is not None
    assert snap.tasks["external-job"].status is TaskStatus.RUNNING
    monkeypatch.setattr(deferred, "UNREACHABLE", False)
    _outage(rt, clock, 15)  # the API is back: the next checks (backed off up to 10 min) end it
    assert deferred.CANCELLED == []
    assert [e.type.rsplit(".", 1)[-1] for _, e in bus.published if "task." in e.type] == [
        "succeeded",
        "requested",  # the next task of the flow
    ]
    (done,) = [e.data for _, e in bus.published if e.type.endswith("task.succeeded")]
    assert (done.key, done.attempt) == ("external-job", 1)


def test_a_check_that_cannot_tell_for_longer_than_the_budget_fails_the_attempt_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, store, bus, clock = _runtime()
    _parked(rt, bus, need=2)
    monkeypatch.setattr(deferred, "UNREACHABLE", True)
    failures: list[TaskFailed] = []
    minutes = 0
    while not failures and minutes < 75:  # OUTAGE_BUDGET (1 h) and the longest backoff (10 min)
        _outage(rt, clock, 1)
        minutes += 1
        failures = [e.data for _, e in bus.published if isinstance(e.data, TaskFailed)]
    assert minutes > 60
    (failed,) = failures
    assert advance(rt, "r", failed)
    assert (failed.key, failed.attempt, failed.retryable) == ("external-job", 1, True)
    assert failed.error.type == "orchestrator.errors.CheckUnavailable"
    assert failed.error.message.startswith(
        "the check of deferred task 'external-job' (attempt 1) could not tell the state of its "
        "work for 1:00:00 (since 2026-01-01T00:"
    )
    assert "last: TransientError: the job API answered 503)" in failed.error.message
    snap = store.load("r", ["external-job"])
    assert snap is not None
    assert [a.error.type for a in snap.tasks["external-job"].attempts if a.error] == [
        "orchestrator.errors.CheckUnavailable"
    ]
