"""Rate limits as pure steps over one key's record: a sliding window of the starts of the last
period, each held by the attempt that took it.

- A start at `now` is permitted when fewer than `count` other starts fall in the period before
  it (`now - period`, `now`]: in ANY window of one period there are then never more than
  `count` starts, bursts included (a token bucket or GCRA with a burst would let up to twice as
  many through across a window's edge; zero burst would space every start evenly instead).
- An attempt over the rate is told when it may start. The next moment the window has room
  (its `count`-th newest start leaves it) goes to the first attempt refused before it
  (`front`), so one that came back on time but found the room taken by a start that came
  late (delivery jitter) starts at the very next chance instead of behind everyone. The others
  go to the back of the line: `interval` (period / count) after the last wake-up handed out
  (`horizon`). So 10,000 attempts refused at once come back spread at the rate, each moment
  promised to at most two of them, never all at the same instant.
- A permit is the attempt's (holder): a duplicate delivery of the same attempt moves it to its
  own time rather than taking a second; an attempt that ends up not starting (it waits for a
  concurrency slot) hands it back (`refund`), unless a duplicate moved it since. A permit
  whose attempt never started (its process died between take and claim) still counts: lost
  permits make a key slower, never faster.

Every step is one read-modify-write of the key's one record.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestrator.contracts import Permit, Rate, RateBook, RateState

_US = timedelta(microseconds=1)


def interval(rate: Rate) -> timedelta:
    """period / count, rounded up to the store's microsecond: starts spread this far apart
    never exceed the rate."""
    return -(-(rate.period // _US) // rate.count) * _US


def take(
    book: RateBook, rate: Rate, holder: str, now: datetime
) -> tuple[RateBook, datetime | None]:
    """A permit for `holder` to start at `now`: (book, None); or (book, when to try again).

    The record keeps the newest `count` + 1 starts whatever their age, not those of the last
    period by some taker's clock: a take whose `now` is older than a record already written
    (a claim that read the clock, then waited on the store; a duplicate moving its permit back)
    still sees `count` others in its window whenever there are (at most one kept is its own,
    and any start dropped is older than every kept one)."""
    others = tuple(p for p in book.starts if p.holder != holder)
    recent = [p.at for p in others if p.at > now - rate.period]  # later ones count too
    if len(recent) < rate.count:
        starts = sorted((*others, Permit(holder=holder, at=now)), key=lambda p: p.at)
        return book.model_copy(
            update={"rate": rate, "starts": tuple(starts[-rate.count - 1 :])}
        ), None
    room = sorted(recent)[-rate.count] + rate.period
    base = book.model_copy(update={"rate": rate})
    if book.front is None or room > book.front:  # the next room, promised to nobody yet
        return base.model_copy(update={"front": room}), room
    last = max(t for t in (book.horizon, book.front) if t is not None)
    later = max(room, last + interval(rate))
    return base.model_copy(update={"horizon": later}), later


def refund(book: RateBook, holder: str, at: datetime) -> RateBook:
    """The attempt did not start after all: the permit it took at `at` counts no more. Only
    that one: a duplicate of the attempt that moved the permit since may be starting on it."""
    mine = Permit(holder=holder, at=at)
    return book.model_copy(update={"starts": tuple(p for p in book.starts if p != mine)})


def state(book: RateBook, now: datetime) -> RateState:
    rate = book.rate
    recent = [p.at for p in book.starts if rate is None or p.at > now - rate.period]
    full = rate is not None and len(recent) >= rate.count
    return RateState(
        key=book.key,
        rate=rate,
        in_window=len(recent),
        next_free=sorted(recent)[-rate.count] + rate.period if full and rate else None,
        horizon=max((t for t in (book.horizon, book.front) if t and t > now), default=None),
    )
