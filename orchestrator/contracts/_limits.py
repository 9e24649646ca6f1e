"""Limits by key: a concurrency key's slots and the tickets of the attempts that wait for one;
a rate key's recent starts."""

from __future__ import annotations

from datetime import datetime

from ._options import Frozen, LimitKey, Rate, RunId


class Ticket(Frozen):
    """An attempt that found no free slot of `key`: woken (its request sent again) when one is
    handed to it. Waiters are served by priority, highest first, then oldest first."""

    key: LimitKey
    run_id: RunId
    task: str
    attempt: int
    priority: int = 0
    enqueued_at: datetime

    @property
    def holder(self) -> str:
        """Who holds a slot: one attempt of one task (duplicates of it share the slot)."""
        return holder_of(self.run_id, self.task, self.attempt)


def holder_of(run_id: str, task: str, attempt: int) -> str:
    return f"{run_id}/{task}/{attempt}"


class Slot(Frozen):
    """One of a key's slots, held by an attempt until `lease_until` (the sweeper renews it
    while the attempt runs and frees it once the attempt is over)."""

    key: LimitKey
    index: int
    holder: str
    run_id: RunId
    task: str
    attempt: int
    lease_until: datetime


class SlotHold(Frozen):
    """The slot an attempt took, as its store wrote it: recorded on the attempt at its claim,
    so that its release can free that slot in one write conditional on `updated` (a store
    that keeps a key in one record takes none). A slot that moved since (renewed, marked as
    waited for, retired, freed) fails that condition: the release then looks it up."""

    key: LimitKey
    index: int
    # The slot's version after the take (Firestore: its update time, RFC 3339 to the
    # nanosecond, which a datetime would round).
    updated: str


class LimitState(Frozen):
    """What `kumoflow limits ls` shows of one key."""

    key: LimitKey
    limit: int
    in_use: int
    waiters: int
    oldest_wait: datetime | None = None
    slots: tuple[Slot, ...] = ()
    waiting: tuple[Ticket, ...] = ()


class LimitBook(Frozen):
    """One key's whole state where one record may hold it (memory, SQLite: one writer at a
    time anyway). Firestore keeps it sharded instead: a document per slot and per ticket."""

    key: LimitKey
    limit: int | None = None  # None: no limit set (then nothing waits, nothing is held)
    slots: tuple[Slot, ...] = ()
    waiting: tuple[Ticket, ...] = ()  # in serving order (see engine.limits.rank)


class Permit(Frozen):
    """A start a rate counts: the attempt that took it (`holder_of`) and when it started."""

    holder: str
    at: datetime


class RateBook(Frozen):
    """One rate key's record: the starts its window still counts, oldest first (at most the
    rate's count), and the wake-up times last handed to attempts over the rate: the back of
    the line (`horizon`) and the next moment the window has room (`front`)."""

    key: LimitKey
    rate: Rate | None = None  # the rate it was last taken under (what `limits ls` shows)
    starts: tuple[Permit, ...] = ()
    horizon: datetime | None = None
    front: datetime | None = None


class RateState(Frozen):
    """What `kumoflow limits ls` shows of one rate key."""

    key: LimitKey
    rate: Rate | None
    in_window: int  # starts within the last period
    next_free: datetime | None  # when the next start may happen (None: now)
    horizon: datetime | None  # the last wake-up handed out: waiters are spread up to it
