"""Port contract tests: rate limits (RateStore), on every store that keeps them.

A key permits at most `count` starts in any window of one period (bursts included), tells an
attempt over it when to come back (those told at once spread at the rate), gives a refunded
permit back, and under concurrent takers from many threads (instances) permits exactly `count`
of them in one instant."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from orchestrator.contracts import Rate, RateUnit
from orchestrator.engine import rates
from orchestrator.errors import ConflictError
from orchestrator.ports import RateStore
from tests.adapters import port_fixtures
from tests.adapters.port_fixtures import Stores, in_threads

store = port_fixtures.store
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def rated(store: Stores) -> RateStore:
    return cast(RateStore, store)


def _rate(count: int, per: RateUnit = RateUnit.SECOND) -> Rate:
    # The emulator's data is shared within a session: a key of its own per test.
    return Rate(key=f"r-{uuid.uuid4().hex[:12]}", count=count, per=per)


def take(rated: RateStore, rate: Rate, holder: str, now: datetime) -> datetime | None:
    """A take, run again on a write conflict (as the runtime's `retried` does)."""
    for _ in range(200):
        try:
            return rated.take_rate(rate, holder, now)
        except ConflictError:
            continue
    raise AssertionError("a take lost 200 races in a row")


def test_a_burst_goes_then_the_rest_are_spread_from_when_the_window_has_room(
    rated: RateStore,
) -> None:
    rate = _rate(3)
    assert [take(rated, rate, f"a{i}", NOW) for i in range(3)] == [None] * 3
    later = [take(rated, rate, f"a{i}", NOW) for i in range(3, 6)]
    step = rates.interval(rate)
    assert later == [NOW + timedelta(seconds=1) + step * i for i in range(3)]
    [state] = [s for s in rated.rate_states(NOW) if s.key == rate.key]
    assert (state.rate, state.in_window, state.next_free) == (rate, 3, NOW + timedelta(seconds=1))
    assert state.horizon == later[-1]
    for i, at in enumerate(later, start=3):  # each comes back at its time and starts
        assert take(rated, rate, f"a{i}", at) is None


def test_a_refunded_permit_counts_no_more(rated: RateStore) -> None:
    rate = _rate(1, RateUnit.MINUTE)
    assert take(rated, rate, "a", NOW) is None
    later = NOW + timedelta(seconds=1)
    assert take(rated, rate, "a", later) is None  # a duplicate of the attempt: its permit moved
    assert take(rated, rate, "b", later) == later + timedelta(minutes=1)
    rated.refund_rate(rate.key, "a", NOW)  # not the permit it holds now: nothing changes
    assert take(rated, rate, "b", later) is not None
    rated.refund_rate(rate.key, "a", later)
    rated.refund_rate(rate.key, "a", later)  # idempotent
    assert take(rated, rate, "b", later) is None


def test_concurrent_takers_get_exactly_count_permits_at_one_instant(rated: RateStore) -> None:
    rate, n = _rate(4), 12
    told: list[datetime | None] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        later = take(rated, rate, f"a{i}", NOW)
        with lock:
            told.append(later)

    assert in_threads(n, one) == [None] * n
    assert told.count(None) == rate.count
    waits = sorted(t for t in told if t is not None)
    assert len(set(waits)) == len(waits)  # each told its own time, spread from the horizon
    assert waits[0] == NOW + timedelta(seconds=1)
    [state] = [s for s in rated.rate_states(NOW) if s.key == rate.key]
    assert state.in_window == rate.count
