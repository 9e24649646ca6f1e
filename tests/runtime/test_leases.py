"""A worker that dies mid-attempt: its lease runs out, the sweep requests the attempt again and
the next worker takes the claim over. Memory adapters, injected clock: no waiting."""

from __future__ import annotations

from datetime import timedelta

from contracts import RunRequested, TaskRequested, TaskStatus, TaskSucceeded
from orchestrator.adapters import MemoryBus, MemoryStore, VirtualClock
from orchestrator.engine import claim
from orchestrator.ports import Commit
from orchestrator.runtime import advance, memory_runtime, redispatch, run_task, start_run
from tests.flows.basic import wide_map


def test_a_dead_workers_attempt_is_requested_again_and_taken_over() -> None:
    store, bus, clock = MemoryStore(), MemoryBus(), VirtualClock()
    bus.record = True
    rt = memory_runtime(clock=clock, functions=wide_map.functions(), store=store, bus=bus)
    store.put_flow(wide_map.spec)
    start_run(rt, RunRequested(flow="wide-map", params={"items": [4], "factor": 1}), run_id="r1")
    (first,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    # A worker claims the attempt, then dies without a word.
    _, task, etag = store.load_task("r1", first.key) or (None, None, None)
    assert task is not None
    claimed = claim(task, first.attempt, "dead-worker", clock.now(), lease_seconds=30)
    assert claimed is not None
    store.commit(Commit(run_id="r1", tasks=[(claimed, etag)]))
    assert run_task(rt, first) is None  # redelivery within the lease: someone is on it
    assert store.expired_leases(clock.now()) == []
    clock.sleep(31)
    (expired,) = store.expired_leases(clock.now())
    bus.published.clear()
    assert redispatch(rt, [expired]) == 1
    (again,) = [e for _, e in bus.published]
    assert isinstance(again.data, TaskRequested)
    assert again.data.attempt == first.attempt
    outcome = run_task(rt, again.data)  # the live worker takes the claim over and runs it
    assert isinstance(outcome, TaskSucceeded)
    assert outcome.worker == rt.worker_id
    advance(rt, "r1", outcome)
    snap = store.load("r1")
    assert snap is not None
    scaled = snap.tasks[first.key]
    assert scaled.status is TaskStatus.SUCCEEDED
    assert scaled.lease_until is None
    assert len(scaled.attempts) == 1
    assert scaled.attempts[0].worker == rt.worker_id
    assert store.expired_leases(clock.now() + timedelta(days=1)) == []
