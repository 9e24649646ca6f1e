"""Port contract tests: outbox/TimerStore, dead letters, EventBus and leases, on every adapter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.contracts import (
    DeadLetter,
    Envelope,
    RunRequested,
    TaskRequested,
    TaskStatus,
    TriggerInfo,
)
from orchestrator.ports import Commit
from tests.adapters import port_fixtures
from tests.adapters.port_fixtures import (
    EMULATOR,
    ERA_DUE,
    ERA_NEXT_DUE,
    ERA_REPLACE,
    BusProbe,
    MemoryBusProbe,
    PubSubProbe,
    Stores,
    _now,
    _uid,
    created,
    load_task,
    make_run,
    make_task,
    outbox_entry,
)

# The adapters under test, from port_fixtures (pytest finds fixtures by module attribute).
bus_probe = port_fixtures.bus_probe
pubsub_probe = port_fixtures.pubsub_probe
store = port_fixtures.store


# --------------------------------------------------------------------------------------------
# Outbox and TimerStore
# --------------------------------------------------------------------------------------------


def test_outbox_entries_are_due_when_their_time_has_come(store: Stores) -> None:
    run = created(store)
    now = ERA_DUE
    past = outbox_entry(run.run_id, "dispatch-a-1", now - timedelta(seconds=10), key="a")
    exact = outbox_entry(run.run_id, "finish", now)
    future = outbox_entry(run.run_id, "wake-1", now + timedelta(hours=1))
    store.commit(Commit(run_id=run.run_id, outbox_add=[future, exact, past]))

    snap = store.load(run.run_id)
    assert snap is not None
    assert sorted(snap.outbox, key=lambda e: e.id) == sorted(
        [past, exact, future], key=lambda e: e.id
    )
    due = [e for e in store.due(now, limit=10_000) if e.run_id == run.run_id]
    assert due == [past, exact]  # due_at <= now, earliest first
    later = [e for e in store.due(now + timedelta(hours=2), limit=10_000) if e.run_id == run.run_id]
    assert later == [past, exact, future]

    store.commit(Commit(run_id=run.run_id, outbox_done=[past.id, exact.id]))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.outbox == (future,)
    assert [e for e in store.due(now, limit=10_000) if e.run_id == run.run_id] == []
    store.commit(Commit(run_id=run.run_id, outbox_done=[future.id, "never-added"]))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.outbox == ()


def test_one_entry_is_read_as_stored_until_it_is_done(store: Stores) -> None:
    """What a timer's own push fires: the entry as stored now (re-armed: its new due time),
    None once done, and None for another run's id or an entry never added."""
    run, other = created(store), created(store)
    wake = outbox_entry(run.run_id, "wake-1", ERA_DUE + timedelta(minutes=5))
    store.commit(Commit(run_id=run.run_id, outbox_add=[wake]))
    assert store.entry(run.run_id, "wake-1") == wake
    assert store.entry(other.run_id, "wake-1") is None
    assert store.entry(run.run_id, "wake-2") is None
    later = wake.model_copy(update={"due_at": wake.due_at + timedelta(minutes=1), "failures": 1})
    store.commit(Commit(run_id=run.run_id, outbox_add=[later]))
    assert store.entry(run.run_id, "wake-1") == later
    store.commit(Commit(run_id=run.run_id, outbox_done=["wake-1"]))
    assert store.entry(run.run_id, "wake-1") is None


def test_next_due_is_the_earliest_pending_entry(store: Stores) -> None:
    run_a, run_b = created(store), created(store)
    second = outbox_entry(run_a.run_id, "wake-2", ERA_NEXT_DUE + timedelta(seconds=2))
    first = outbox_entry(run_b.run_id, "wake-1", ERA_NEXT_DUE + timedelta(seconds=1))
    third = outbox_entry(run_a.run_id, "wake-3", ERA_NEXT_DUE + timedelta(seconds=3))
    store.commit(Commit(run_id=run_a.run_id, outbox_add=[second, third]))
    store.commit(Commit(run_id=run_b.run_id, outbox_add=[first]))
    try:
        assert store.next_due() == first.due_at
        assert store.due(ERA_NEXT_DUE + timedelta(seconds=10), limit=2) == [first, second]
        assert store.due(first.due_at) == [first]
        assert store.due(first.due_at - timedelta(microseconds=1)) == []

        store.commit(Commit(run_id=run_b.run_id, outbox_done=[first.id]))
        assert store.next_due() == second.due_at
        store.commit(Commit(run_id=run_a.run_id, outbox_done=[second.id]))
        assert store.next_due() == third.due_at
    finally:
        store.commit(Commit(run_id=run_a.run_id, outbox_done=[second.id, third.id]))
        store.commit(Commit(run_id=run_b.run_id, outbox_done=[first.id]))
    after = store.next_due()
    assert after is None or after > third.due_at


def test_outbox_add_with_an_existing_id_replaces_the_entry(store: Stores) -> None:
    run = created(store)
    early = outbox_entry(run.run_id, "dispatch-a-2", ERA_REPLACE + timedelta(seconds=1))
    late = early.model_copy(update={"due_at": ERA_REPLACE + timedelta(seconds=5)})
    store.commit(Commit(run_id=run.run_id, outbox_add=[early]))
    try:
        store.commit(Commit(run_id=run.run_id, outbox_add=[late]))
        snap = store.load(run.run_id)
        assert snap is not None
        assert snap.outbox == (late,)
        assert store.due(ERA_REPLACE + timedelta(seconds=2)) == []
        assert store.next_due() == late.due_at
    finally:
        store.commit(Commit(run_id=run.run_id, outbox_done=[early.id]))


# --------------------------------------------------------------------------------------------
# DeadLetterStore
# --------------------------------------------------------------------------------------------


def _letter(letter_id: str, received_at: datetime, reason: str = "bad input") -> DeadLetter:
    return DeadLetter(
        id=letter_id,
        received_at=received_at,
        source="tasks",
        reason=reason,
        event_type="dev.kumoflow.task.requested",
        event_id=letter_id,
        payload='{"not": "valid"} \u00fc',
    )


def test_dead_letters_list_newest_first(store: Stores) -> None:
    t0 = _now()
    older = _letter(_uid("dl"), t0)
    newer = _letter(_uid("pubsub/dl"), t0 + timedelta(seconds=1))  # '/' in the id
    store.record(older)
    store.record(newer)
    ours = [d for d in store.list(limit=10_000) if d.id in (older.id, newer.id)]
    assert ours == [newer, older]
    assert len(store.list(limit=1)) == 1


def test_dead_letter_recorded_twice_is_kept_once(store: Stores) -> None:
    letter = _letter(_uid("dl"), _now())
    store.record(letter)
    store.record(letter)  # a redelivery of the same rejected event
    ours = [d for d in store.list(limit=10_000) if d.id == letter.id]
    assert ours == [letter]


def test_dead_letter_read_by_id_with_what_a_redrive_needs(store: Stores) -> None:
    letter = _letter(_uid("pubsub/dl"), _now()).model_copy(
        update={"topic": "ingest", "attributes": {"mode": "x", "ce-id": "1"}, "exact": True}
    )
    store.record(letter)
    assert store.get(letter.id) == letter
    assert store.get(_uid("absent")) is None
    again = letter.model_copy(update={"redriven_at": _now()})
    store.record(again)  # marked redriven: the same record, updated
    assert store.get(letter.id) == again


# --------------------------------------------------------------------------------------------
# EventBus
# --------------------------------------------------------------------------------------------


def _envelopes(run_id: str) -> list[Envelope]:
    now = _now()
    return [
        Envelope(
            id=f"{run_id}/scale[3]/1",
            type="dev.kumoflow.task.requested",
            source="//kumoflow/orchestrator",
            time=now,
            subject="scale[3]",
            data=TaskRequested(
                run_id=run_id, flow_version="0123456789abcdef0123", key="scale[3]", attempt=1
            ),
        ),
        Envelope(
            id=_uid("evt"),
            type="dev.kumoflow.run.requested",
            source="//kumoflow/cli",
            time=now + timedelta(microseconds=1),
            data=RunRequested(
                flow="diamond",
                params={"m": [[1, 2], [3]], "s": "ü✓"},
                run_id=run_id,
                trigger=TriggerInfo(kind="api", detail={"grid": [[1], []]}),
            ),
        ),
    ]


def test_bus_delivers_published_events_unchanged(bus_probe: BusProbe) -> None:
    topic, other_topic = bus_probe.new_topic(), bus_probe.new_topic()
    events = _envelopes(_uid("run"))
    for event in events:
        bus_probe.bus.publish(topic, event)

    got = [event for event, _ in bus_probe.received(topic, len(events))]

    assert sorted(got, key=lambda e: e.id) == sorted(events, key=lambda e: e.id)
    by_id = {e.id: e for e in got}
    assert by_id[events[0].id].data == events[0].data
    requested = by_id[events[1].id].data
    assert isinstance(requested, RunRequested)
    assert requested.params["m"] == [[1, 2], [3]]
    assert by_id[events[0].id].time == events[0].time
    if isinstance(bus_probe, MemoryBusProbe):  # a pull with nothing to get waits a deadline
        assert bus_probe.received(other_topic, 1) == []


@EMULATOR
def test_pubsub_carries_binary_mode_cloudevents(pubsub_probe: PubSubProbe) -> None:
    topic = pubsub_probe.new_topic()
    event = _envelopes(_uid("run"))[0]
    pubsub_probe.bus.publish(topic, event)

    ((got, attributes),) = pubsub_probe.received(topic, 1)

    assert got == event
    assert attributes is not None
    assert attributes["ce-type"] == "dev.kumoflow.task.requested"
    assert attributes["ce-id"] == event.id
    assert attributes["ce-source"] == event.source
    assert attributes["ce-specversion"] == "1.0"
    assert attributes["ce-subject"] == "scale[3]"
    assert datetime.fromisoformat(attributes["ce-time"]) == event.time
    assert attributes["content-type"] == "application/json"
    assert all(k.startswith("ce-") or k == "content-type" for k in attributes)


ERA_LEASES = datetime(2980, 1, 1, tzinfo=UTC)  # far ahead: the stack's sweeper never sees them


def test_expired_leases_find_running_attempts_whose_claim_ran_out(store: Stores) -> None:
    run = make_run()
    assert store.create_run(run)
    expired = make_task(run.run_id, "a").model_copy(
        update={"status": TaskStatus.RUNNING, "lease_until": ERA_LEASES}
    )
    alive = make_task(run.run_id, "b").model_copy(
        update={"status": TaskStatus.RUNNING, "lease_until": ERA_LEASES + timedelta(hours=1)}
    )
    queued = make_task(run.run_id, "c")
    store.commit(Commit(run_id=run.run_id, tasks=[(expired, None), (alive, None), (queued, None)]))
    found = [
        t for t in store.expired_leases(ERA_LEASES + timedelta(minutes=1)) if t.run_id == run.run_id
    ]
    assert [t.key for t in found] == ["a"]
    _, task, etag = load_task(store, run.run_id, "a") or (None, None, None)
    assert task is not None
    done = task.model_copy(update={"status": TaskStatus.SUCCEEDED, "lease_until": None})
    store.commit(Commit(run_id=run.run_id, tasks=[(done, etag)]))
    assert [
        t for t in store.expired_leases(ERA_LEASES + timedelta(minutes=1)) if t.run_id == run.run_id
    ] == []


ERA_TASK_PAGES = datetime(2990, 1, 1, tzinfo=UTC)  # this test's own era


def test_expired_leases_and_stale_dispatches_page_through_everything_after_a_cursor(
    store: Stores,
) -> None:
    run = created(store)
    base = ERA_TASK_PAGES
    # Two tasks per deadline: ties are ordered by document (run, then key).
    records = [
        make_task(run.run_id, f"k{i}").model_copy(
            update={
                "status": TaskStatus.RUNNING,
                "lease_until": base + timedelta(seconds=i // 2),
                "redispatch_at": base + timedelta(seconds=i // 2),
            }
        )
        for i in range(7)
    ]
    store.commit(Commit(run_id=run.run_id, tasks=[(t, None) for t in records]))
    for query in (store.expired_leases, store.stale_dispatches):
        keys, after = [], None
        while True:
            page = query(base + timedelta(seconds=10), 3, after)
            keys += [t.key for t in page if t.run_id == run.run_id]
            if len(page) < 3:
                break
            after = page[-1]
        assert keys == [t.key for t in records]
    for t in records:  # tests remove what they add: no deadlines left in this era
        _, task, etag = load_task(store, run.run_id, t.key) or (None, None, None)
        assert task is not None
        done = task.model_copy(update={"lease_until": None, "redispatch_at": None})
        store.commit(Commit(run_id=run.run_id, tasks=[(done, etag)]))
    assert [
        t for t in store.expired_leases(base + timedelta(seconds=10)) if t.run_id == run.run_id
    ] == []
