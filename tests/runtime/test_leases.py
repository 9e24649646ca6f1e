"""Fenced leases: a worker that dies mid-attempt, a worker that outlives its lease, stale and
forged tokens. Memory adapters, injected clock: no waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest

from orchestrator import flow, task
from orchestrator.adapters import MemoryBus, MemoryStore, SystemClock, VirtualClock
from orchestrator.contracts import (
    Attempt,
    Run,
    RunRequested,
    RunStatus,
    TaskFailed,
    TaskRequested,
    TaskRun,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine import Plan, claim, claimable, expand
from orchestrator.errors import BadInputError
from orchestrator.ports import Commit
from orchestrator.runtime import (
    LEASE_S,
    Runtime,
    advance,
    memory_runtime,
    run_task,
    start_run,
    tick,
)
from orchestrator.runtime.worker import Lease

CALLS: list[int] = []


@task(name="work", retries=1)
def work(x: int) -> int:
    CALLS.append(x)
    return x * 10


@task(name="work-once")
def work_once(x: int) -> int:
    CALLS.append(x)
    return x * 10


@flow(name="lease-flow")
def lease_flow(x: int = 4) -> int:
    return work(x)


@flow(name="lease-flow-no-retry")
def lease_flow_no_retry(x: int = 4) -> int:
    return work_once(x)


def _setup(f: object) -> tuple[Runtime, MemoryStore, MemoryBus, VirtualClock, TaskRequested]:
    store, bus, clock = MemoryStore(), MemoryBus(), VirtualClock()
    bus.record = True
    rt = memory_runtime(clock=clock, functions=f.functions(), store=store, bus=bus)  # type: ignore[attr-defined]
    store.put_flow(f.spec)  # type: ignore[attr-defined]
    start_run(rt, RunRequested(flow=f.spec.name), run_id="r1")  # type: ignore[attr-defined]
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    CALLS.clear()
    return rt, store, bus, clock, req


def _plan(store: MemoryStore, run: Run) -> Plan:
    spec = store.get_flow(run.flow_version)
    assert spec is not None
    return expand(spec, run.params)


def _die_holding_the_claim(store: MemoryStore, clock: VirtualClock, req: TaskRequested) -> str:
    snap = store.load("r1", [req.key])
    assert snap is not None
    record = claimable(
        snap.run, _plan(store, snap.run), req.key, snap.tasks.get(req.key), 1, clock.now()
    )
    assert record is not None
    taken = claim(record, req.attempt, "dead-token", "dead", clock.now(), LEASE_S)
    assert taken is not None
    store.commit(Commit(run_id="r1", tasks=[(taken, snap.etags.get(req.key))]))
    return "dead-token"


def _deliver_all(rt: Runtime, bus: MemoryBus) -> None:
    """Hand every recorded message to its handler until nothing new is published."""
    seen = 0
    while seen < len(bus.published):
        topic, envelope = bus.published[seen]
        seen += 1
        if topic == rt.topics.tasks:
            assert isinstance(envelope.data, TaskRequested)
            run_task(rt, envelope.data)
        elif topic == rt.topics.events:
            assert isinstance(envelope.data, TaskSucceeded | TaskFailed)
            advance(rt, "r1", envelope.data)


def test_a_dead_workers_attempt_fails_by_lease_and_a_new_attempt_runs() -> None:
    rt, store, bus, clock, req = _setup(lease_flow)
    _die_holding_the_claim(store, clock, req)
    assert run_task(rt, req) is None  # redelivery while the lease holds: someone is on it
    clock.sleep(2 * LEASE_S - 1)
    assert tick(rt) == 0  # within lease + grace: a report may still be on its way
    clock.sleep(2)
    bus.published.clear()
    assert tick(rt) == 1  # the lease ran out: the attempt fails, the retry policy takes over
    snap = store.load("r1", [req.key])
    assert snap is not None
    record = snap.tasks[req.key]
    assert record.attempts[0].status is TaskStatus.FAILED
    assert record.attempts[0].error is not None
    assert record.attempts[0].error.type == "LeaseExpired"
    assert record.attempt == 2  # a takeover is a new attempt, counted against retries
    _deliver_all(rt, bus)
    done = store.load("r1")
    assert done is not None
    assert done.run.status is RunStatus.SUCCEEDED
    assert CALLS == [4]  # the dead worker never ran user code; the new attempt ran it once


def test_an_attempt_that_keeps_outliving_its_lease_fails_once_retries_are_spent() -> None:
    rt, store, _bus, clock, req = _setup(lease_flow_no_retry)
    _die_holding_the_claim(store, clock, req)
    clock.sleep(2 * LEASE_S + 1)
    tick(rt)
    snap = store.load("r1")
    assert snap is not None
    assert snap.run.status is RunStatus.FAILED
    assert snap.run.error is not None
    assert snap.run.error.type == "LeaseExpired"
    assert "stopped renewing its lease" in snap.run.error.message


def test_a_slow_worker_beside_a_new_attempt_stores_one_result_and_the_run_succeeds() -> None:
    rt, store, bus, clock, req = _setup(lease_flow)
    _die_holding_the_claim(store, clock, req)  # the "slow" worker holds attempt 1
    clock.sleep(2 * LEASE_S + 1)
    tick(rt)
    # The slow worker finishes late and stores its result first, at the task's one location.
    snap = store.load("r1", [req.key])
    assert snap is not None
    uri = rt.task_result_uri(rt.plan(snap.run.flow_version, snap.run.params), "r1", req.key)
    rt.blobs.put(uri, b"40", "application/json")
    late = TaskSucceeded(
        run_id="r1",
        key=req.key,
        attempt=1,
        token="dead-token",
        result_uri=uri,
        worker="dead",
        started_at=clock.now(),
        ended_at=clock.now(),
    )
    assert advance(rt, "r1", late) is False  # attempt 1 is over: its report changes nothing
    _deliver_all(rt, bus)  # attempt 2 runs, finds the result stored, reports success
    done = store.load("r1")
    assert done is not None
    assert done.run.status is RunStatus.SUCCEEDED


def test_a_completion_with_another_claims_token_is_rejected() -> None:
    rt, store, _bus, clock, req = _setup(lease_flow)
    _die_holding_the_claim(store, clock, req)
    snap = store.load("r1", [req.key])
    assert snap is not None
    uri = rt.task_result_uri(rt.plan(snap.run.flow_version, snap.run.params), "r1", req.key)
    forged = TaskSucceeded(
        run_id="r1",
        key=req.key,
        attempt=1,
        token="not-the-claim",
        result_uri=uri,
        worker="x",
        started_at=clock.now(),
        ended_at=clock.now(),
    )
    with pytest.raises(BadInputError, match="fencing token"):
        advance(rt, "r1", forged)
    after = store.load("r1", [req.key])
    assert after is not None
    assert after.tasks[req.key] == snap.tasks[req.key]


def test_each_claim_has_its_own_token_and_no_lease_outlives_the_attempt() -> None:
    rt, store, _bus, clock, req = _setup(lease_flow)
    outcome = run_task(rt, req)
    assert isinstance(outcome, TaskSucceeded)
    assert outcome.token
    assert outcome.worker.endswith(outcome.token[:8])  # unique per claim, not per process
    advance(rt, "r1", outcome)
    snap = store.load("r1", [req.key])
    assert snap is not None
    assert snap.tasks[req.key].lease_until is None
    assert store.expired_leases(clock.now() + timedelta(days=1)) == []


HELD = threading.Event()  # the renewing task runs until the test lets it end
RENEWING: list[Callable[[], None]] = []  # what the task does while it runs (set by a test)


@task(name="renewing")
def renewing(x: int) -> int:
    for step in RENEWING:
        step()
    return x


@flow(name="renewing-flow")
def renewing_flow(x: int = 1) -> int:
    return renewing(x)


def test_a_renewed_lease_outlives_the_first_so_a_sweep_mid_attempt_expires_nothing() -> None:
    """Virtual time: the attempt runs past its first lease; one renewal in between (what the
    lease thread does every third of a lease) keeps the sweeper from failing it."""
    store, bus, clock = MemoryStore(), MemoryBus(), VirtualClock()
    bus.record = True
    rt = memory_runtime(clock=clock, functions=renewing_flow.functions(), store=store, bus=bus)
    store.put_flow(renewing_flow.spec)
    start_run(rt, RunRequested(flow="renewing-flow"), run_id="r1")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    seen: list[object] = []

    def held() -> TaskRun:
        snap = store.load("r1", [req.key])
        assert snap is not None
        return snap.tasks[req.key]

    def renew_midway() -> None:
        token = held().attempts[-1].token
        assert token is not None
        clock.sleep(0.9 * rt.lease_seconds)
        assert Lease(rt, req, token).renew_once()
        assert not Lease(rt, req, "another-claim").renew_once()  # fenced
        seen.append(held().lease_until)
        # Past the first lease and the sweep's grace (a lease more), not the renewed one's.
        clock.sleep(1.7 * rt.lease_seconds)
        assert tick(rt, budget_s=30) == 0  # the renewed lease has not run out
        seen.append(held().status)

    RENEWING[:] = [renew_midway]
    try:
        outcome = run_task(rt, req)
    finally:
        RENEWING.clear()
    assert isinstance(outcome, TaskSucceeded), outcome.error if outcome else None
    assert seen[1] is TaskStatus.RUNNING


def test_the_lease_thread_renews_while_user_code_runs() -> None:
    """Real time, no verdict on timing: the task ends only once the lease was seen renewed
    twice (pytest-timeout is the safety net)."""
    store, bus = MemoryStore(), MemoryBus()
    bus.record = True
    rt = memory_runtime(
        clock=SystemClock(), functions=renewing_flow.functions(), store=store, bus=bus
    )
    rt = replace(rt, lease_seconds=0.3)  # renewed every 0.1 s
    store.put_flow(renewing_flow.spec)
    start_run(rt, RunRequested(flow="renewing-flow"), run_id="r1")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    HELD.clear()
    RENEWING[:] = [lambda: HELD.wait(60)]
    leases: set[object] = set()
    try:
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(run_task, rt, req)
            while len(leases) < 3:
                snap = store.load("r1", [req.key])
                assert snap is not None
                record = snap.tasks.get(req.key)  # a root's record appears with its claim
                if record is not None and record.lease_until is not None:
                    leases.add(record.lease_until)
                time.sleep(0.01)
            HELD.set()
            outcome = running.result()
    finally:
        RENEWING.clear()
        HELD.set()
    assert isinstance(outcome, TaskSucceeded)


def test_a_lease_that_ran_out_after_the_result_was_stored_ends_in_that_result() -> None:
    """The worker finished and stored, but its report is late (or lost): no failure."""
    rt, store, _bus, clock, req = _setup(lease_flow_no_retry)
    _die_holding_the_claim(store, clock, req)
    snap = store.load("r1", [req.key])
    assert snap is not None
    uri = rt.task_result_uri(rt.plan(snap.run.flow_version, snap.run.params), "r1", req.key)
    rt.blobs.put(uri, b"40", "application/json")
    clock.sleep(2 * LEASE_S + 1)
    assert tick(rt) == 1
    done = store.load("r1")
    assert done is not None
    assert done.run.status is RunStatus.SUCCEEDED
    assert done.tasks[req.key].attempt == 1


def _stuck(store: MemoryStore, clock: VirtualClock, n: int) -> None:
    """`n` running attempts whose lease ran out long ago, in a run whose flow version nobody
    registered: their expiry fails every time and never progresses."""
    run = Run(
        run_id="stuck",
        flow="gone",
        flow_version="0123456789abcdef0123",
        params={},
        created_at=clock.now(),
    )
    store.create_run(run)
    long_ago = clock.now() - timedelta(days=1)
    tasks = []
    for i in range(n):
        record = TaskRun(
            run_id="stuck",
            key=f"x{i:03d}",
            node="x",
            name="x",
            status=TaskStatus.QUEUED,
            attempts=(Attempt(number=1, status=TaskStatus.QUEUED, queued_at=long_ago),),
        )
        taken = claim(record, 1, f"token-{i}", "dead", long_ago, LEASE_S)
        assert taken is not None
        tasks.append((taken, None))
    store.commit(Commit(run_id="stuck", tasks=tasks))


def test_lease_expiry_pages_past_a_full_page_of_leases_that_never_progress() -> None:
    rt, store, _bus, clock, req = _setup(lease_flow_no_retry)
    _stuck(store, clock, 200)  # a whole page (PAGE), all older than the one below
    _die_holding_the_claim(store, clock, req)
    clock.sleep(2 * LEASE_S + 1)
    tick(rt)
    snap = store.load("r1")
    assert snap is not None
    assert snap.run.status is RunStatus.FAILED
    assert snap.run.error is not None
    assert snap.run.error.type == "LeaseExpired"


def test_leases_and_redispatches_left_in_an_ended_run_are_cleared() -> None:
    """A task still going in a run that ended (its end missed it) holds a lease or a re-dispatch
    time nothing acts on: the sweep ends it CANCELLED, as the run's end would have, and the
    queries stop returning it."""
    rt, store, bus, clock, req = _setup(lease_flow_no_retry)
    _die_holding_the_claim(store, clock, req)
    snap = store.load("r1")
    assert snap is not None
    queued = TaskRun(
        run_id="r1",
        key="orphan",
        node="orphan",
        name="orphan",
        status=TaskStatus.QUEUED,
        attempts=(Attempt(number=1, status=TaskStatus.QUEUED, queued_at=clock.now()),),
        redispatch_at=clock.now() + timedelta(minutes=10),
    )
    ended = snap.run.model_copy(update={"status": RunStatus.CANCELLED, "ended_at": clock.now()})
    store.commit(Commit(run_id="r1", run=ended, run_etag=snap.run_etag, tasks=[(queued, None)]))
    clock.sleep(3600)
    bus.published.clear()
    tick(rt)
    assert [e for _, e in bus.published if isinstance(e.data, TaskRequested)] == []
    far = clock.now() + timedelta(days=1)
    assert store.expired_leases(far) == []
    assert store.stale_dispatches(far) == []
    after = store.load("r1")
    assert after is not None
    assert {k: t.status for k, t in after.tasks.items()} == {
        req.key: TaskStatus.CANCELLED,
        "orphan": TaskStatus.CANCELLED,
    }
    assert after.run.status is RunStatus.CANCELLED
