"""Port contract tests: concurrency limits (LimitStore), on every store that keeps them.

A key's slots are never more than its limit, a waiter waits in line once, a freed slot goes to
the first in line (priority, then age) at once, and under concurrent takers exactly `limit`
hold while the rest wait, each served once as slots free up."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from orchestrator.contracts import Ticket
from orchestrator.ports import LimitStore
from tests.adapters import port_fixtures
from tests.adapters.port_fixtures import EMULATOR, Stores, in_threads

store = port_fixtures.store
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = NOW + timedelta(minutes=1)


@pytest.fixture
def limits(store: Stores) -> LimitStore:
    return cast(LimitStore, store)


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=EMULATOR)])
def two(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LimitStore, LimitStore]]:
    """Two instances over the same records, as two processes have (each its own caches)."""
    opened: list[Any] = []
    if request.param == "sqlite":
        from orchestrator.adapters import SqliteStore

        opened = [SqliteStore(tmp_path / "runs.db") for _ in range(2)]
        yield opened[0], opened[1]
        for s in opened:
            s.close()
        return
    request.getfixturevalue("stack_env")
    from orchestrator.adapters import FirestoreStore
    from tests.adapters.port_fixtures import _project

    opened = [FirestoreStore.from_env(f"{_project()}-adapters") for _ in range(2)]
    yield opened[0], opened[1]
    for s in opened:
        s._db.close()


def _key() -> str:
    return f"k-{uuid.uuid4().hex[:12]}"  # the emulator's data is shared within a session


def ticket(key: str, n: int, *, priority: int = 0, at: int = 0) -> Ticket:
    return Ticket(
        key=key,
        run_id=f"run-{n}",
        task="t",
        attempt=1,
        priority=priority,
        enqueued_at=NOW + timedelta(seconds=at),
    )


def taking(store: LimitStore, t: Ticket) -> tuple[bool, list[Ticket]]:
    """What acquire did, but which slot it took (a store may say, or not)."""
    got = store.acquire(t, LEASE)
    return got.holds, got.woken


def test_a_key_without_a_limit_holds_nothing(limits: LimitStore) -> None:
    key = _key()
    assert taking(limits, ticket(key, 0)) == (True, [])
    assert limits.limit_states(key) == []


def test_takers_beyond_the_limit_wait_in_line_once_and_a_release_hands_the_slot_on(
    limits: LimitStore,
) -> None:
    key = _key()
    assert limits.set_limit(key, 2, LEASE) == []
    assert taking(limits, ticket(key, 0)) == (True, [])
    assert taking(limits, ticket(key, 1)) == (True, [])
    assert taking(limits, ticket(key, 2, at=5)) == (False, [])
    assert taking(limits, ticket(key, 2, at=9)) == (False, [])  # a duplicate request
    assert taking(limits, ticket(key, 0)) == (True, [])  # a duplicate of a holder
    [state] = limits.limit_states(key)
    assert (state.limit, state.in_use, state.waiters) == (2, 2, 1)
    assert state.oldest_wait == NOW + timedelta(seconds=5)
    woken = limits.release(key, ticket(key, 0).holder, LEASE)
    assert [t.holder for t in woken] == [ticket(key, 2).holder]
    assert taking(limits, ticket(key, 2)) == (True, [])  # the woken one holds its slot
    [state] = limits.limit_states(key)
    assert (state.in_use, state.waiters) == (2, 0)
    assert {s.holder for s in state.slots} == {ticket(key, 1).holder, ticket(key, 2).holder}
    assert limits.release(key, ticket(key, 0).holder, LEASE) == []  # idempotent


def test_waiters_are_served_by_priority_then_first_come(limits: LimitStore) -> None:
    key = _key()
    limits.set_limit(key, 1, LEASE)
    assert limits.acquire(ticket(key, 0), LEASE)[0]
    for n, (priority, at) in enumerate([(0, 1), (0, 2), (5, 3), (5, 4)], start=1):
        assert limits.acquire(ticket(key, n, priority=priority, at=at), LEASE)[0] is False
    order = []
    holder = ticket(key, 0).holder
    for _ in range(4):
        [woken] = limits.release(key, holder, LEASE)
        order.append(woken.run_id)
        holder = woken.holder
    assert order == ["run-3", "run-4", "run-1", "run-2"]


def test_a_raised_limit_serves_waiters_and_a_cut_one_lets_holders_finish(
    limits: LimitStore,
) -> None:
    key = _key()
    limits.set_limit(key, 1, LEASE)
    limits.acquire(ticket(key, 0), LEASE)
    limits.acquire(ticket(key, 1, at=1), LEASE)
    limits.acquire(ticket(key, 2, at=2), LEASE)
    assert [t.run_id for t in limits.set_limit(key, 2, LEASE)] == ["run-1"]
    assert limits.set_limit(key, 1, LEASE) == []
    [state] = limits.limit_states(key)
    assert (state.limit, state.in_use, state.waiters) == (1, 2, 1)
    # Two hold a limit of one now: the first to end hands nothing on, the second does.
    held = sorted(state.slots, key=lambda s: s.index)
    assert limits.release(key, held[-1].holder, LEASE) == []
    assert [t.run_id for t in limits.release(key, held[0].holder, LEASE)] == ["run-2"]


def test_expired_slots_are_found_for_the_sweeper(limits: LimitStore) -> None:
    key = _key()
    limits.set_limit(key, 2, LEASE)
    limits.acquire(ticket(key, 0), NOW + timedelta(seconds=10))
    limits.acquire(ticket(key, 1), NOW + timedelta(hours=1))
    found = [s for s in limits.expired_slots(NOW + timedelta(minutes=1)) if s.key == key]
    assert [s.holder for s in found] == [ticket(key, 0).holder]
    limits.acquire(ticket(key, 0), NOW + timedelta(hours=2))  # renewed
    assert [s for s in limits.expired_slots(NOW + timedelta(minutes=1)) if s.key == key] == []


def test_concurrent_takers_never_exceed_the_limit_and_every_waiter_is_served(
    limits: LimitStore,
) -> None:
    key, n, limit = _key(), 12, 3
    limits.set_limit(key, limit, LEASE)
    held: list[str] = []
    lock = threading.Lock()

    def take(i: int) -> None:
        holds, woken, _ = limits.acquire(ticket(key, i, at=i), LEASE)
        with lock:
            held.extend([ticket(key, i).holder] if holds else [])
            held.extend(t.holder for t in woken)

    assert in_threads(n, take) == [None] * n
    # A taker served by a concurrent one may see its slot itself too (Firestore): its request
    # is then sent once more, and the claim dedupes it. The slots held are the limit's.
    held = sorted(set(held))
    assert len(held) == limit
    [state] = limits.limit_states(key)
    assert sorted(s.holder for s in state.slots) == held
    served = set(held)
    while held:  # each holder ends; what it frees goes to exactly one waiter
        holder = held.pop()
        woken = limits.release(key, holder, LEASE)
        assert len(woken) <= 1
        for t in woken:
            assert t.holder not in served
            served.add(t.holder)
            held.append(t.holder)
        [state] = limits.limit_states(key)
        assert state.in_use <= limit
    assert len(served) == n
    [state] = limits.limit_states(key)
    assert (state.in_use, state.waiters) == (0, 0)


def test_a_free_slot_is_taken_at_once_and_a_waiter_after_it_gets_it_on_release(
    limits: LimitStore,
) -> None:
    key = _key()
    limits.set_limit(key, 1, LEASE)
    assert taking(limits, ticket(key, 0)) == (True, [])  # free: taken, nobody in line
    assert taking(limits, ticket(key, 1, at=1)) == (False, [])  # arrives after: waits
    assert [t.holder for t in limits.release(key, ticket(key, 0).holder, LEASE)] == [
        ticket(key, 1).holder
    ]
    # The woken attempt's request comes again: it finds its slot, and takes no second one.
    assert taking(limits, ticket(key, 1)) == (True, [])
    [state] = limits.limit_states(key)
    assert (state.in_use, state.waiters) == (1, 0)
    assert [s.holder for s in state.slots] == [ticket(key, 1).holder]


def test_a_release_with_nobody_waiting_frees_the_slot_for_the_next_taker(
    limits: LimitStore,
) -> None:
    key = _key()
    limits.set_limit(key, 2, LEASE)
    for n in range(2):
        assert taking(limits, ticket(key, n)) == (True, [])
    assert taking(limits, ticket(key, 2, at=1)) == (False, [])
    assert [t.run_id for t in limits.release(key, ticket(key, 0).holder, LEASE)] == ["run-2"]
    assert limits.release(key, ticket(key, 1).holder, LEASE) == []  # nobody waits now
    [state] = limits.limit_states(key)
    assert (state.in_use, state.waiters) == (1, 0)
    assert taking(limits, ticket(key, 3)) == (True, [])  # the freed slot, at once
    assert taking(limits, ticket(key, 4, at=2)) == (False, [])  # full again
    [state] = limits.limit_states(key)
    assert (state.in_use, state.waiters) == (2, 1)


def test_a_removed_limit_lets_takers_through_and_holders_end_without_handing_on(
    limits: LimitStore,
) -> None:
    key = _key()
    limits.set_limit(key, 1, LEASE)
    assert taking(limits, ticket(key, 0)) == (True, [])  # the limit is known now
    assert taking(limits, ticket(key, 1, at=1)) == (False, [])
    assert [t.run_id for t in limits.set_limit(key, None, LEASE)] == ["run-1"]
    assert taking(limits, ticket(key, 2)) == (True, [])  # no limit: nothing waits
    assert limits.release(key, ticket(key, 0).holder, LEASE) == []
    assert limits.limit_states(key) == []  # nothing left of it
    limits.set_limit(key, 1, LEASE)  # set again: one slot, free
    assert taking(limits, ticket(key, 3)) == (True, [])
    assert taking(limits, ticket(key, 4, at=1)) == (False, [])


def test_a_limit_cut_or_removed_by_another_instance_applies_to_one_that_knew_the_old_one(
    two: tuple[LimitStore, LimitStore],
) -> None:
    here, there = two
    key = _key()
    here.set_limit(key, 3, LEASE)
    assert taking(here, ticket(key, 0)) == (True, [])  # `here` knows the limit of 3
    there.set_limit(key, 1, LEASE)  # cut elsewhere: the one slot is held
    assert taking(here, ticket(key, 1, at=1)) == (False, [])
    assert taking(here, ticket(key, 2, at=2)) == (False, [])
    [state] = there.limit_states(key)
    assert (state.in_use, state.waiters) == (1, 2)
    assert [t.run_id for t in there.set_limit(key, None, LEASE)] == ["run-1", "run-2"]
    assert taking(here, ticket(key, 3, at=3)) == (True, [])  # removed: nobody waits
    assert here.release(key, ticket(key, 0).holder, LEASE) == []
    assert there.limit_states(key) == []


def _firestore(store: LimitStore) -> Any:
    """The Firestore client of a FirestoreStore, None for another store."""
    from google.cloud import firestore

    db = getattr(store, "_db", None)
    return db if isinstance(db, firestore.Client) else None


@contextmanager
def firestore_calls(store: LimitStore) -> Iterator[list[str]]:
    """The Firestore RPCs `store` makes meanwhile (none recorded for other stores): what a
    release costs, each commit one write, each query or get at least one read."""
    calls: list[str] = []
    db = _firestore(store)
    if db is None:
        yield calls
        return
    api = db._firestore_api

    class Counting:
        def __getattr__(self, name: str) -> Any:
            attr = getattr(api, name)
            if name.startswith("_") or not callable(attr):
                return attr

            def call(*args: Any, **kwargs: Any) -> Any:
                calls.append(name)
                return attr(*args, **kwargs)

            return call

    db._firestore_api_internal = Counting()
    try:
        yield calls
    finally:
        db._firestore_api_internal = api


def test_a_release_with_the_slot_its_take_named_frees_it_in_one_write(
    limits: LimitStore,
) -> None:
    key = _key()
    limits.set_limit(key, 1, LEASE)
    got = limits.acquire(ticket(key, 0), LEASE)
    assert got.holds
    with firestore_calls(limits) as calls:
        assert limits.release(key, ticket(key, 0).holder, LEASE, got.hold) == []
    if _firestore(limits) is not None:  # it names the slot; the others keep a key in one record
        assert got.hold is not None
        assert (got.hold.key, got.hold.index) == (key, 0)
        assert calls == ["commit"]  # no query for the slot, no read of the line
    [state] = limits.limit_states(key)
    assert (state.in_use, state.waiters) == (0, 0)
    assert taking(limits, ticket(key, 1)) == (True, [])  # free for the next taker
    assert taking(limits, ticket(key, 2, at=1)) == (False, [])  # and one slot only


def test_a_slot_marked_or_renewed_since_its_take_is_freed_as_before_and_wakes_the_waiter(
    limits: LimitStore,
) -> None:
    key = _key()
    limits.set_limit(key, 2, LEASE)
    first, second = (limits.acquire(ticket(key, n), LEASE) for n in range(2))
    assert first.holds
    assert second.holds
    limits.acquire(ticket(key, 0), LEASE + timedelta(hours=1))  # renewed (the sweeper)
    assert limits.release(key, ticket(key, 0).holder, LEASE, first.hold) == []
    [state] = limits.limit_states(key)
    assert [s.holder for s in state.slots] == [ticket(key, 1).holder]
    assert taking(limits, ticket(key, 2)) == (True, [])
    assert taking(limits, ticket(key, 3, at=1)) == (False, [])  # it marks both slots waited
    woken = limits.release(key, ticket(key, 1).holder, LEASE, second.hold)
    assert [t.holder for t in woken] == [ticket(key, 3).holder]
    [state] = limits.limit_states(key)
    assert sorted(s.holder for s in state.slots) == [ticket(key, n).holder for n in (2, 3)]
    assert state.waiters == 0


def test_a_slot_retired_by_a_cut_since_its_take_goes_with_its_release(limits: LimitStore) -> None:
    key = _key()
    limits.set_limit(key, 2, LEASE)
    held = [limits.acquire(ticket(key, n), LEASE) for n in range(2)]
    limits.set_limit(key, 1, LEASE)  # the second slot is retired: its release deletes it
    for n, got in enumerate(held):
        assert limits.release(key, ticket(key, n).holder, LEASE, got.hold) == []
    assert taking(limits, ticket(key, 2)) == (True, [])
    assert taking(limits, ticket(key, 3, at=1)) == (False, [])  # the limit is one again
    [state] = limits.limit_states(key)
    assert (state.limit, state.in_use, state.waiters) == (1, 1, 1)


def test_a_release_repeated_after_its_slot_went_on_changes_nothing(limits: LimitStore) -> None:
    key = _key()
    limits.set_limit(key, 1, LEASE)
    got = limits.acquire(ticket(key, 0), LEASE)
    assert limits.release(key, ticket(key, 0).holder, LEASE, got.hold) == []
    assert taking(limits, ticket(key, 1)) == (True, [])  # the same slot, taken anew
    assert taking(limits, ticket(key, 2, at=1)) == (False, [])
    # A redelivered completion of the first holder: its slot's write fails its condition, and
    # the slot held by another is left alone.
    assert limits.release(key, ticket(key, 0).holder, LEASE, got.hold) == []
    [state] = limits.limit_states(key)
    assert [s.holder for s in state.slots] == [ticket(key, 1).holder]
    assert state.waiters == 1
