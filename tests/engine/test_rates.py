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
    # The next room goes to the first; the rest queue from it, one interval apart.
    first = T0 + timedelta(seconds=1)
    assert told == [first + step * i for i in range(6)]
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


def test_one_that_came_back_on_time_but_lost_its_room_gets_the_next_room() -> None:
    """Delivery jitter: a start later than its wake-up keeps the window full a little longer;
    the one refused for it is promised the next room, not the back of the line."""
    book = RateBook(key="api")
    for n in range(3):
        book, _ = rates.take(book, RATE, f"a{n}", T0 + timedelta(milliseconds=10 * n))
    book, first = rates.take(book, RATE, "w0", T0)  # the next room: T0 + 1 s
    for n in range(1, 6):
        book, _ = rates.take(book, RATE, f"w{n}", T0)  # queued behind, an interval apart
    assert first == T0 + timedelta(seconds=1)
    book, later = rates.take(book, RATE, "w0", first + timedelta(milliseconds=200))
    assert later is None
    # Two newcomers fill the window behind w0's late start; w1, told 1.333 s, comes back on
    # time and finds it full until w0 (1.2 s) leaves it.
    book, _ = rates.take(book, RATE, "n0", first + timedelta(milliseconds=250))
    book, _ = rates.take(book, RATE, "n1", first + timedelta(milliseconds=300))
    book, again = rates.take(book, RATE, "w1", T0 + timedelta(milliseconds=1334))
    assert again == first + timedelta(milliseconds=1200)  # w0's leaving: ahead of w2..w5
    assert rates.take(book, RATE, "w1", again)[1] is None


def test_a_take_with_an_older_clock_still_sees_every_start_of_its_window() -> None:
    """A claim that read the clock and then waited on the store takes at a time older than
    starts already kept: those its window holds must still be there (kept by count, not age)."""
    two = Rate(key="api", count=2, per=RateUnit.SECOND)
    book = RateBook(key="api")
    for who, ms in (("a", 0), ("b", 50), ("c", 1500)):
        book, later = rates.take(book, two, who, T0 + timedelta(milliseconds=ms))
        assert later is None
    book, later = rates.take(book, two, "late", T0 + timedelta(milliseconds=900))
    assert later is not None  # [0, 1 s) already holds a and b


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
            # milliseconds since the last step; below 0: a take whose clock read is older than
            # the record it finds (a claim that waited on the store, or clocks that differ)
            st.integers(-300, 400),
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
