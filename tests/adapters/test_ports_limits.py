"""Port contract tests: concurrency limits (LimitStore), on every store that keeps them.

A key's slots are never more than its limit, a waiter waits in line once, a freed slot goes to
the first in line (priority, then age) at once, and under concurrent takers exactly `limit`
hold while the rest wait, each served once as slots free up."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
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


def test_a_key_without_a_limit_holds_nothing(limits: LimitStore) -> None:
    key = _key()
    assert limits.acquire(ticket(key, 0), LEASE) == (True, [])
    assert limits.limit_states(key) == []


def test_takers_beyond_the_limit_wait_in_line_once_and_a_release_hands_the_slot_on(
    limits: LimitStore,
) -> None:
    key = _key()
    assert limits.set_limit(key, 2, LEASE) == []
    assert limits.acquire(ticket(key, 0), LEASE) == (True, [])
    assert limits.acquire(ticket(key, 1), LEASE) == (True, [])
    assert limits.acquire(ticket(key, 2, at=5), LEASE) == (False, [])
    assert limits.acquire(ticket(key, 2, at=9), LEASE) == (False, [])  # a duplicate request
    assert limits.acquire(ticket(key, 0), LEASE) == (True, [])  # a duplicate of a holder
    [state] = limits.limit_states(key)
    assert (state.limit, state.in_use, state.waiters) == (2, 2, 1)
    assert state.oldest_wait == NOW + timedelta(seconds=5)
    woken = limits.release(key, ticket(key, 0).holder, LEASE)
    assert [t.holder for t in woken] == [ticket(key, 2).holder]
    assert limits.acquire(ticket(key, 2), LEASE) == (True, [])  # the woken one holds its slot
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
        holds, woken = limits.acquire(ticket(key, i, at=i), LEASE)
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
    assert limits.acquire(ticket(key, 0), LEASE) == (True, [])  # free: taken, nobody in line
    assert limits.acquire(ticket(key, 1, at=1), LEASE) == (False, [])  # arrives after: waits
    assert [t.holder for t in limits.release(key, ticket(key, 0).holder, LEASE)] == [
        ticket(key, 1).holder
    ]
    # The woken attempt's request comes again: it finds its slot, and takes no second one.
    assert limits.acquire(ticket(key, 1), LEASE) == (True, [])
    [state] = limits.limit_states(key)
    assert (state.in_use, state.waiters) == (1, 0)
    assert [s.holder for s in state.slots] == [ticket(key, 1).holder]


def test_a_release_with_nobody_waiting_frees_the_slot_for_the_next_taker(
    limits: LimitStore,
) -> None:
    key = _key()
    limits.set_limit(key, 2, LEASE)
    for n in range(2):
        assert limits.acquire(ticket(key, n), LEASE) == (True, [])
    assert limits.acquire(ticket(key, 2, at=1), LEASE) == (False, [])
    assert [t.run_id for t in limits.release(key, ticket(key, 0).holder, LEASE)] == ["run-2"]
    assert limits.release(key, ticket(key, 1).holder, LEASE) == []  # nobody waits now
    [state] = limits.limit_states(key)
    assert (state.in_use, state.waiters) == (1, 0)
    assert limits.acquire(ticket(key, 3), LEASE) == (True, [])  # the freed slot, at once
    assert limits.acquire(ticket(key, 4, at=2), LEASE) == (False, [])  # full again
    [state] = limits.limit_states(key)
    assert (state.in_use, state.waiters) == (2, 1)


def test_a_removed_limit_lets_takers_through_and_holders_end_without_handing_on(
    limits: LimitStore,
) -> None:
    key = _key()
    limits.set_limit(key, 1, LEASE)
    assert limits.acquire(ticket(key, 0), LEASE) == (True, [])  # the limit is known now
    assert limits.acquire(ticket(key, 1, at=1), LEASE) == (False, [])
    assert [t.run_id for t in limits.set_limit(key, None, LEASE)] == ["run-1"]
    assert limits.acquire(ticket(key, 2), LEASE) == (True, [])  # no limit: nothing waits
    assert limits.release(key, ticket(key, 0).holder, LEASE) == []
    assert limits.limit_states(key) == []  # nothing left of it
    limits.set_limit(key, 1, LEASE)  # set again: one slot, free
    assert limits.acquire(ticket(key, 3), LEASE) == (True, [])
    assert limits.acquire(ticket(key, 4, at=1), LEASE) == (False, [])


def test_a_limit_cut_or_removed_by_another_instance_applies_to_one_that_knew_the_old_one(
    two: tuple[LimitStore, LimitStore],
) -> None:
    here, there = two
    key = _key()
    here.set_limit(key, 3, LEASE)
    assert here.acquire(ticket(key, 0), LEASE) == (True, [])  # `here` knows the limit of 3
    there.set_limit(key, 1, LEASE)  # cut elsewhere: the one slot is held
    assert here.acquire(ticket(key, 1, at=1), LEASE) == (False, [])
    assert here.acquire(ticket(key, 2, at=2), LEASE) == (False, [])
    [state] = there.limit_states(key)
    assert (state.in_use, state.waiters) == (1, 2)
    assert [t.run_id for t in there.set_limit(key, None, LEASE)] == ["run-1", "run-2"]
    assert here.acquire(ticket(key, 3, at=3), LEASE) == (True, [])  # removed: nobody waits
    assert here.release(key, ticket(key, 0).holder, LEASE) == []
    assert there.limit_states(key) == []
