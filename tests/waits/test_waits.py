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
    WaitEvent,
)
from orchestrator.engine import CancelRun
from orchestrator.runtime import (
    ExpiryPages,
    Runtime,
    advance,
    expire_events,
    memory_runtime,
    run_task,
    start_run,
    tick,
)
from orchestrator.runtime.sweeper import EVENTS_EVERY
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


def _ids(rt: Runtime) -> list[str]:
    """The ids of the events in the mailbox (read from each record)."""
    root = f"gs://{rt.results_bucket}/kumoflow/events/"
    return sorted(
        WaitEvent.model_validate_json(rt.blobs.get(u)).id for u in rt.blobs.list_uris(root)
    )


def _markers(rt: Runtime) -> int:
    return len(rt.blobs.list_uris(f"gs://{rt.results_bucket}/kumoflow/event-ids/"))


def test_events_past_retention_go_once_no_live_run_can_take_them() -> None:
    """An event older than every live run's start and than retention (7 days) is deleted
    by the sweeper with its marker; one a live run's `since=run_start` wait may still take
    stays past retention, and is taken; once that run ended, it goes too."""
    rt, store, bus, clock = _runtime()
    orders = pubsub_topic("orders")
    send_event(orders, {"kind": "order", "n": 0}, event_id="before-the-run", rt=rt)
    clock.sleep(86_400)
    params = {"timeout": 30 * 86_400, "since": "run_start"}
    start_run(rt, RunRequested(flow="order-listener", params=params), run_id="r")
    clock.sleep(1)
    send_event(orders, {"kind": "order", "n": 1}, event_id="for-the-run", rt=rt)
    clock.sleep(8 * 86_400)  # both past retention; the run's wait has not started yet
    send_event(orders, {"kind": "refund"}, event_id="recent", rt=rt)
    tick(rt)  # the sweeper's look: only the event no live run can take goes
    assert _ids(rt) == ["for-the-run", "recent"]
    assert _markers(rt) == 2
    _pump(rt, bus)  # the wait starts now: since its run's start, the kept event is its first
    _wait(rt, bus, clock, 2)
    assert _result(rt, store, "r") == b'{"kind":"order","n":1}'
    tick(rt)
    assert _ids(rt) == ["for-the-run", "recent"]  # the next look comes EVENTS_EVERY later
    clock.sleep(EVENTS_EVERY.total_seconds())
    tick(rt)  # the run ended: its event is past retention and goes
    assert _ids(rt) == ["recent"]
    assert _markers(rt) == 1


def test_event_expiry_goes_a_page_at_a_time_and_waits_for_every_old_run() -> None:
    rt, _, bus, clock = _runtime()
    for n in range(5):
        send_event(pubsub_topic("orders"), {"n": n}, event_id=f"e{n}", rt=rt)
    for run_id in ("a", "b"):  # two old runs, ended
        _start(rt, bus, "order-listener", {"timeout": 1}, run_id)
        _wait(rt, bus, clock, 2)
    clock.sleep(8 * 86_400)
    few = ExpiryPages(run_page=1, run_pages=1)
    assert expire_events(rt, clock.now(), few).deleted == 0  # not every old run read: none goes
    two = few._replace(run_pages=3, delete_page=2)
    assert expire_events(rt, clock.now(), two) == (2, True)
    assert (len(_ids(rt)), _markers(rt)) == (3, 3)
    assert expire_events(rt, clock.now(), two) == (2, True)  # a whole page: there may be more
    assert len(_ids(rt)) == 1
    tick(rt)  # the sweeper's own look takes the rest
    assert (_ids(rt), _markers(rt)) == ([], 0)
    # An id sent again after its event expired is recorded anew (at its new time).
    assert send_event(pubsub_topic("orders"), {"n": 0}, event_id="e0", rt=rt)
