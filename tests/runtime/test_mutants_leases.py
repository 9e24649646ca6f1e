"""Leases the suite left loose: only the claim's token renews (or parks) an attempt, and an
expiry the sweeper decided on before the worker renewed changes nothing."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.contracts import TaskStatus, TaskSucceeded
from orchestrator.engine import LeaseExpired, renew, waiting
from orchestrator.ports import Commit
from orchestrator.runtime import LEASE_S, advance
from tests.runtime.test_leases import _die_holding_the_claim, _setup, lease_flow


def test_only_the_claims_token_renews_or_parks_its_attempt() -> None:
    _, store, _bus, clock, req = _setup(lease_flow)
    token = _die_holding_the_claim(store, clock, req)
    snap = store.load("r1", [req.key])
    assert snap is not None
    record = snap.tasks[req.key]
    later = clock.now() + timedelta(seconds=5)
    assert renew(record, 1, "someone-else", later, LEASE_S) is None
    assert waiting(record, 1, "someone-else", "child") is None
    renewed = renew(record, 1, token, later, LEASE_S)
    assert renewed is not None
    assert renewed.lease_until == later + timedelta(seconds=LEASE_S)
    assert renew(record, 2, token, later, LEASE_S) is None  # not the attempt it holds


def test_an_expiry_read_before_the_worker_renewed_fails_nothing() -> None:
    rt, store, bus, clock, req = _setup(lease_flow)
    token = _die_holding_the_claim(store, clock, req)
    clock.sleep(LEASE_S + 1)  # the sweeper reads the record: its lease ran out ...
    snap = store.load("r1", [req.key])
    assert snap is not None
    longer = renew(snap.tasks[req.key], 1, token, clock.now(), LEASE_S)
    assert longer is not None  # ... and the worker, alive after all, renews it
    store.commit(Commit(run_id="r1", tasks=[(longer, snap.etags[req.key])]))
    published = len(bus.published)
    assert not advance(rt, "r1", LeaseExpired(req.key, 1, token))
    after = store.load("r1", [req.key])
    assert after is not None
    task = after.tasks[req.key]
    assert (task.status, task.attempt, task.attempts[-1].token) == (TaskStatus.RUNNING, 1, token)
    assert task.lease_until == longer.lease_until
    assert len(bus.published) == published  # no retry dispatched
    assert not any(isinstance(e.data, TaskSucceeded) for _, e in bus.published)
