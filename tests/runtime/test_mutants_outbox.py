"""The outbox as a redelivered whole-run event finds it: what its handler committed and did
not do is done, but a dispatch whose attempt a worker already claimed was delivered, so it is
only deleted, never published again."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.contracts import OutboxEntry, RunRequested, TaskRequested, TaskStatus
from orchestrator.engine import REDISPATCH_AFTER, ResumeRun
from orchestrator.ports import Commit
from orchestrator.runtime import advance, run_task, start_run, tick
from tests.runtime.test_leases import _die_holding_the_claim, _setup, lease_flow
from tests.runtime.test_sweeper import FAILS, _runtime, then_retrying


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


def test_a_lost_dispatch_is_sent_again_once_per_redispatch_period_until_claimed() -> None:
    """The sweeper re-sends a queued child's lost request, and moves its next check on by
    REDISPATCH_AFTER: the next ticks send nothing until that time has passed again."""
    rt, store, bus, clock = _runtime()
    store.put_flow(then_retrying.spec)
    FAILS["moved-on"] = 1  # no failure: this is about the lost request only
    start_run(rt, RunRequested(flow="then-retrying", params={"key": "moved-on"}), run_id="r")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    first = run_task(rt, req)
    assert first is not None
    advance(rt, "r", first)
    bus.published.clear()  # the child's dispatch is lost

    def sent() -> list[str]:
        return [e.id for _, e in bus.published if isinstance(e.data, TaskRequested)]

    clock.sleep(REDISPATCH_AFTER.total_seconds() + 1)
    tick(rt)
    assert sent() == ["r/fails-once/1/again"]
    clock.sleep(60)
    tick(rt)
    clock.sleep(60)
    tick(rt)
    assert len(sent()) == 1  # not again on every tick
    clock.sleep(REDISPATCH_AFTER.total_seconds())
    tick(rt)
    assert len(sent()) == 2  # still unclaimed a period later: sent again
