"""The outbox as a redelivered whole-run event finds it: what its handler committed and did
not do is done, but a dispatch whose attempt a worker already claimed was delivered, so it is
only deleted, never published again."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.contracts import OutboxEntry, TaskRequested, TaskStatus
from orchestrator.engine import ResumeRun
from orchestrator.ports import Commit
from orchestrator.runtime import advance
from tests.runtime.test_leases import _die_holding_the_claim, _setup, lease_flow


def test_a_left_dispatch_of_a_claimed_attempt_is_deleted_not_published_again() -> None:
    rt, store, bus, clock, req = _setup(lease_flow)
    _die_holding_the_claim(store, clock, req)
    left = OutboxEntry(
        id=f"dispatch-{req.key}-1",
        run_id="r1",
        kind="dispatch",
        due_at=clock.now() + timedelta(seconds=60),
        key=req.key,
        attempt=1,
    )
    store.commit(Commit(run_id="r1", outbox_add=[left]))
    before = len(bus.published)
    # Any whole-run event that changes nothing: here a resume of a run that is not ended.
    assert not advance(rt, "r1", ResumeRun(attempt=1))
    snap = store.load("r1")
    assert snap is not None
    assert [e.id for e in snap.outbox if e.kind == "dispatch"] == []
    assert not any(isinstance(e.data, TaskRequested) for _, e in bus.published[before:])
    assert snap.tasks[req.key].status is TaskStatus.RUNNING


def test_a_left_dispatch_of_an_unclaimed_attempt_is_published() -> None:
    rt, store, bus, clock, req = _setup(lease_flow)
    left = OutboxEntry(
        id=f"dispatch-{req.key}-1",
        run_id="r1",
        kind="dispatch",
        due_at=clock.now() + timedelta(seconds=60),
        key=req.key,
        attempt=1,
    )
    store.commit(Commit(run_id="r1", outbox_add=[left]))
    before = len(bus.published)
    assert not advance(rt, "r1", ResumeRun(attempt=1))
    sent = [e.data for _, e in bus.published[before:] if isinstance(e.data, TaskRequested)]
    assert [(r.key, r.attempt) for r in sent] == [(req.key, 1)]
    snap = store.load("r1")
    assert snap is not None
    assert [e.id for e in snap.outbox if e.kind == "dispatch"] == []
