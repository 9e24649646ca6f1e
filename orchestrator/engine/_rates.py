"""Rate limits as pure steps over one key's record: a sliding window of the starts of the last
period, each held by the attempt that took it.

- A start at `now` is permitted when fewer than `count` other starts fall in the period before
  it (`now - period`, `now`]: in ANY window of one period there are then never more than
  `count` starts, bursts included (a token bucket or GCRA with a burst would let up to twice as
  many through across a window's edge; zero burst would space every start evenly instead).
- An attempt over the rate is told when it may start: when the window has room again, but no
  earlier than `interval` (period / count) after the last wake-up handed out (`horizon`). So
  10,000 attempts refused at once come back spread at the rate, not all at the same instant;
  each is refused at most when others took the room first (it then comes back later again).
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
    """A permit for `holder` to start at `now`: (book, None); or (book, when to try again)."""
    kept = tuple(p for p in book.starts if p.at > now - rate.period)  # older ones no longer count
    others = tuple(p for p in kept if p.holder != holder)
    if len(others) < rate.count:
        starts = tuple(sorted((*others, Permit(holder=holder, at=now)), key=lambda p: p.at))
        return book.model_copy(update={"rate": rate, "starts": starts}), None
    room = sorted(p.at for p in others)[-rate.count] + rate.period
    later = max(room, now)
    if book.horizon is not None:
        later = max(later, book.horizon + interval(rate))
    return book.model_copy(update={"rate": rate, "starts": kept, "horizon": later}), later


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
        horizon=book.horizon if book.horizon is not None and book.horizon > now else None,
    )
