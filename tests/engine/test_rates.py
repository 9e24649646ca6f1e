"""Rate limits' pure rules (engine.rates): whatever the order and timing of takes, duplicates
and refunds, no window of one period holds more permitted starts than the rate's count; an
attempt over the rate is told a later time, and those told at once are spread at the rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.contracts import Rate, RateBook, RateUnit, parse_rate
from orchestrator.engine import rates

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RATE = Rate(key="api", count=3, per=RateUnit.SECOND)


def most_in_a_window(times: list[datetime], period: timedelta) -> int:
    """The most of `times` in any half-open window [t, t + period)."""
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + period) for t in times), default=0)


def test_a_burst_of_count_goes_at_once_then_the_next_waits_for_room() -> None:
    book = RateBook(key="api")
    for n in range(3):
        book, later = rates.take(book, RATE, f"a{n}", T0)
        assert later is None
    book, later = rates.take(book, RATE, "a3", T0 + timedelta(milliseconds=100))
    assert later == T0 + timedelta(seconds=1)  # when the burst's first leaves the window
    book, later = rates.take(book, RATE, "a3", T0 + timedelta(seconds=1))
    assert later is None


def test_attempts_refused_at_once_come_back_spread_at_the_rate() -> None:
    book = RateBook(key="api")
    for n in range(3):
        book, _ = rates.take(book, RATE, f"a{n}", T0)
    told = []
    for n in range(3, 9):
        book, later = rates.take(book, RATE, f"a{n}", T0)
        assert later is not None
        told.append(later)
    step = rates.interval(RATE)
    assert told == [T0 + timedelta(seconds=1) + step * i for i in range(6)]
    assert step * RATE.count >= RATE.period  # rounded up: spread starts never exceed the rate


def test_each_comes_back_on_time_and_starts() -> None:
    book = RateBook(key="api")
    for n in range(3):
        book, _ = rates.take(book, RATE, f"a{n}", T0)
    told = {}
    for n in range(3, 12):
        book, later = rates.take(book, RATE, f"a{n}", T0)
        assert later is not None
        told[f"a{n}"] = later
    for who, at in sorted(told.items(), key=lambda kv: kv[1]):
        book, later = rates.take(book, RATE, who, at)
        assert later is None, f"{who} came back at its time {at} and was refused"


def test_a_duplicate_takes_no_second_permit_and_a_refund_gives_it_back() -> None:
    book = RateBook(key="api")
    book, _ = rates.take(book, RATE, "a", T0)
    book, later = rates.take(book, RATE, "a", T0 + timedelta(milliseconds=5))
    assert later is None
    assert [p.holder for p in book.starts] == ["a"]  # moved to the duplicate's own time
    assert book.starts[0].at == T0 + timedelta(milliseconds=5)
    assert rates.refund(book, "a", T0) == book  # moved since: a duplicate may start on it
    book = rates.refund(book, "a", T0 + timedelta(milliseconds=5))
    assert book.starts == ()
    assert rates.state(book, T0).in_window == 0


def test_state_says_when_the_next_start_may_be() -> None:
    book = RateBook(key="api")
    for n in range(3):
        book, _ = rates.take(book, RATE, f"a{n}", T0 + timedelta(milliseconds=10 * n))
    book, later = rates.take(book, RATE, "w", T0 + timedelta(milliseconds=50))
    s = rates.state(book, T0 + timedelta(milliseconds=50))
    assert (s.in_window, s.next_free, s.horizon) == (3, T0 + timedelta(seconds=1), later)
    s = rates.state(book, T0 + timedelta(seconds=5))
    assert (s.in_window, s.next_free, s.horizon) == (0, None, None)


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(1, 5),
    steps=st.lists(
        st.tuples(
            st.integers(0, 400),  # milliseconds since the last step
            st.integers(0, 7),  # which attempt
            st.sampled_from(["take", "take", "take", "refund"]),
        ),
        max_size=60,
    ),
)
def test_no_window_of_one_period_holds_more_starts_than_the_count(
    count: int, steps: list[tuple[int, int, str]]
) -> None:
    rate = Rate(key="api", count=count, per=RateUnit.SECOND)
    book = RateBook(key="api")
    now = T0
    started: dict[str, datetime] = {}  # each attempt's current permit: where it started
    for gap, who, op in steps:
        now += timedelta(milliseconds=gap)
        holder = f"a{who}"
        if op == "refund":
            if holder in started:
                book = rates.refund(book, holder, started.pop(holder))
            continue
        book, later = rates.take(book, rate, holder, now)
        if later is None:
            started[holder] = now
        else:
            assert later > now
        assert most_in_a_window(list(started.values()), rate.period) <= count


def test_the_written_form_parses_to_a_typed_rate() -> None:
    assert parse_rate("openai:60/m") == Rate(key="openai", count=60, per=RateUnit.MINUTE)
    assert parse_rate("a:b:10/s").key == "a:b"  # the key may hold ':' itself
    assert str(parse_rate("x:5/h")) == "x:5/h"
