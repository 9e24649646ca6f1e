"""Waits in memory: a sleep ends at its time, a wait takes the first matching event once (and
an early one only when asked), a pause takes validated input once; each through the sweeper's
check of a parked attempt, with no worker waiting."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.adapters import MemoryBus, MemoryStore, VirtualClock
from orchestrator.contracts import (
    OutboxKind,
    RunRequested,
    RunStatus,
    TaskFailed,
    TaskRequested,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine import CancelRun
from orchestrator.runtime import Runtime, advance, memory_runtime, run_task, start_run, tick
from orchestrator.waits import (
    InputRefused,
    NotWaiting,
    kumoflow_event,
    pubsub_topic,
    resume,
    send_event,
    waiting_for,
    waiting_pauses,
)
from tests.flows.waits import approval, file_waiter, napper, order_listener

FLOWS = (napper, approval, order_listener, file_waiter)


def _runtime() -> tuple[Runtime, MemoryStore, MemoryBus, VirtualClock]:
    store, bus, clock = MemoryStore(), MemoryBus(), VirtualClock()
    bus.record = True
    functions = {k: v for f in FLOWS for k, v in f.functions().items()}
    rt = memory_runtime(clock=clock, functions=functions, store=store, bus=bus)
    for f in FLOWS:
        store.put_flow(f.spec)
    return rt, store, bus, clock


def _pump(rt: Runtime, bus: MemoryBus) -> None:
    """Deliver what was published (task requests, completions) until nothing is left."""
    while bus.published:
        batch, bus.published[:] = list(bus.published), []
        for _, env in batch:
            data = env.data
            if isinstance(data, TaskRequested):
                done = run_task(rt, data)
                if done is not None:
                    advance(rt, data.run_id, done)
            elif isinstance(data, TaskSucceeded | TaskFailed):
                advance(rt, data.run_id, data)


def _start(rt: Runtime, bus: MemoryBus, flow: str, params: dict[str, Any], run_id: str) -> None:
    start_run(rt, RunRequested(flow=flow, params=params), run_id=run_id)
    _pump(rt, bus)


def _status(store: MemoryStore, run_id: str) -> RunStatus:
    snap = store.load(run_id)
    assert snap is not None
    return snap.run.status


def _result(rt: Runtime, store: MemoryStore, run_id: str) -> bytes:
    snap = store.load(run_id)
    assert snap is not None
    assert snap.run.result_uri is not None
    return rt.blobs.get(snap.run.result_uri)


def _wait(rt: Runtime, bus: MemoryBus, clock: VirtualClock, seconds: float) -> None:
    for _ in range(int(seconds * 2)):
        clock.sleep(0.5)
        tick(rt)
        _pump(rt, bus)


def _shown(store: MemoryStore, run_id: str) -> list[str]:
    snap = store.load(run_id)
    assert snap is not None
    return [w for e in snap.outbox if (w := waiting_for(e.detail.get("handle") or {}))]  # type: ignore[arg-type]


def test_a_sleep_parks_and_ends_at_its_time_not_before() -> None:
    rt, store, bus, clock = _runtime()
    _start(rt, bus, "napper", {"seconds": 30}, "r")
    assert _status(store, "r") is RunStatus.RUNNING
    (shown,) = _shown(store, "r")
    assert shown.startswith("sleep until ")
    _wait(rt, bus, clock, 29)
    assert _status(store, "r") is RunStatus.RUNNING
    _wait(rt, bus, clock, 2)
    assert _status(store, "r") is RunStatus.SUCCEEDED
    assert _result(rt, store, "r") == b'"slept 30"'


def test_a_wait_takes_the_first_matching_event_once_and_ignores_others() -> None:
    rt, store, bus, clock = _runtime()
    _start(rt, bus, "order-listener", {"timeout": 600}, "r")
    assert _shown(store, "r") == [f"event from pubsub/orders (until {_deadline(store)})"]
    orders = pubsub_topic("orders")
    send_event(orders, {"kind": "refund", "n": 1}, event_id="m1", rt=rt)
    clock.sleep(0.1)
    assert send_event(orders, {"kind": "order", "n": 2}, event_id="m2", rt=rt)
    assert not send_event(orders, {"kind": "order", "n": 2}, event_id="m2", rt=rt)  # duplicate
    clock.sleep(0.1)
    send_event(orders, {"kind": "order", "n": 3}, event_id="m3", rt=rt)
    _wait(rt, bus, clock, 3)
    assert _status(store, "r") is RunStatus.SUCCEEDED
    assert _result(rt, store, "r") == b'{"kind":"order","n":2}'


def _deadline(store: MemoryStore) -> str:
    snap = store.load("r")
    assert snap is not None
    (entry,) = [e for e in snap.outbox if e.kind is OutboxKind.CHECK]
    return str(entry.detail["handle"]["deadline"])  # type: ignore[index, call-overload]


@pytest.mark.parametrize(("since", "taken"), [("wait_start", False), ("run_start", True)])
def test_an_event_before_the_wait_is_taken_only_since_run_start(since: str, taken: bool) -> None:
    rt, store, bus, clock = _runtime()
    start_run(
        rt, RunRequested(flow="order-listener", params={"timeout": 5, "since": since}), run_id="r"
    )
    clock.sleep(1)
    orders = pubsub_topic("orders")
    send_event(orders, {"kind": "order"}, event_id="early", rt=rt)
    clock.sleep(1)
    _pump(rt, bus)  # the wait starts after the event
    _wait(rt, bus, clock, 7)
    assert _status(store, "r") is RunStatus.SUCCEEDED
    assert _result(rt, store, "r") == (b'{"kind":"order"}' if taken else b"null")


def test_a_wait_times_out_with_none() -> None:
    rt, store, bus, clock = _runtime()
    _start(rt, bus, "order-listener", {"timeout": 5}, "r")
    _wait(rt, bus, clock, 4)
    assert _status(store, "r") is RunStatus.RUNNING
    _wait(rt, bus, clock, 2)
    assert _result(rt, store, "r") == b"null"


def test_named_events_are_a_source_of_their_own() -> None:
    rt, _, _, _ = _runtime()
    assert send_event(kumoflow_event("x"), 1, event_id="a", rt=rt)
    assert rt.blobs.list_uris(f"gs://{rt.results_bucket}/kumoflow/events/event/x/")


def test_a_pause_takes_valid_input_once_and_refuses_bad_input_changing_nothing() -> None:
    rt, store, bus, _clock = _runtime()
    _start(rt, bus, "approval", {"amount": 5}, "r")
    (shown,) = _shown(store, "r")
    assert shown.startswith("input (Approval) (until ")
    with pytest.raises(InputRefused) as bad:
        resume(rt, "r", '{"approved": "perhaps"}')
    assert {tuple(e["loc"]) for e in bad.value.errors} == {("approved",), ("approver",)}
    assert set(waiting_pauses(rt, "r")) == {"pause"}
    with pytest.raises(InputRefused):
        resume(rt, "r", "not json")
    done = resume(rt, "r", {"approved": True, "approver": "ana"})
    assert done.value == {"approved": True, "approver": "ana", "note": ""}
    _pump(rt, bus)
    assert _result(rt, store, "r") == b'"5 approved by ana"'
    with pytest.raises(NotWaiting):  # a second resume resumes nothing
        resume(rt, "r", {"approved": False, "approver": "bob"})
    snap = store.load("r", ["pause"])
    assert snap is not None
    assert snap.tasks["pause"].status is TaskStatus.SUCCEEDED


def test_a_pause_times_out_failing_and_a_later_resume_is_refused() -> None:
    rt, store, bus, clock = _runtime()
    _start(rt, bus, "approval", {"timeout": 10}, "r")
    _wait(rt, bus, clock, 80)  # backed-off checks still end it at its deadline
    assert _status(store, "r") is RunStatus.FAILED
    snap = store.load("r", ["pause"])
    assert snap is not None
    assert snap.tasks["pause"].error is not None
    assert snap.tasks["pause"].error.type.endswith("PauseTimedOut")
    with pytest.raises(NotWaiting):
        resume(rt, "r", {"approved": True, "approver": "ana"})


def test_a_cancelled_run_takes_no_input() -> None:
    rt, store, bus, _ = _runtime()
    _start(rt, bus, "approval", {}, "r")
    entries = waiting_pauses(rt, "r")
    advance(rt, "r", CancelRun("test"))
    _pump(rt, bus)
    assert _status(store, "r") is RunStatus.CANCELLED
    assert entries  # it was waiting before the cancel
    with pytest.raises(NotWaiting):
        resume(rt, "r", {"approved": True, "approver": "ana"})


def test_a_wait_for_a_file_ends_with_the_first_object_under_the_prefix() -> None:
    rt, store, bus, clock = _runtime()
    _start(rt, bus, "file-waiter", {}, "r")
    rt.blobs.put("gs://landing/elsewhere/a.csv", b"x", "text/csv")  # not under the prefix
    _wait(rt, bus, clock, 2)
    assert _status(store, "r") is RunStatus.RUNNING
    rt.blobs.put("gs://landing/incoming/b.csv", b"x", "text/csv")
    _wait(rt, bus, clock, 2)
    assert _result(rt, store, "r") == b'"incoming/b.csv"'


def test_a_deploy_declares_a_subscription_for_each_topic_a_flow_waits_on() -> None:
    from orchestrator.cloud import tfvars
    from orchestrator.waits import wait_topics

    assert wait_topics(order_listener.spec) == {"orders"}
    assert wait_topics(file_waiter.spec) == set()
    specs = [order_listener.spec, napper.spec]
    out = tfvars(specs, project="p", region="r", source_archive="gs://b/s.zip")
    assert out["wait_topics"] == ["orders"]
    assert "wait_topics" not in tfvars([napper.spec], project="p", region="r", source_archive="x")
