"""Concurrency limits as pure steps over one key's book: take a slot or wait in line, free a
slot, change the limit. Whoever frees a slot hands it to the first waiter at once (reserved
under a lease, its request sent again), so a free slot and a waiter never coexist after a step:
no waiter polls, and a newcomer cannot overtake the line.

Serving order: by `rank`, a ticket's enqueue time moved earlier by AGING per priority level.
Within a priority that is FIFO; a higher priority goes first; and a waiter is overtaken only by
tickets of priority p' > p enqueued less than (p' - p) * AGING after it, so no priority starves
for longer than that (plus the wait of those ahead of it). The rank is one value per ticket, so a
store can keep tickets in an index ordered by it (Firestore: a query, no read of the whole line).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestrator.contracts import LimitBook, LimitState, Slot, Ticket

AGING = timedelta(seconds=60)  # what one priority level is worth in waiting time


def rank(ticket: Ticket) -> tuple[datetime, str]:
    """A ticket's place in line (smaller first); the holder breaks ties stably."""
    return ticket.enqueued_at - AGING * ticket.priority, ticket.holder


def reserve(ticket: Ticket, index: int, lease_until: datetime) -> Slot:
    return Slot(
        key=ticket.key,
        index=index,
        holder=ticket.holder,
        run_id=ticket.run_id,
        task=ticket.task,
        attempt=ticket.attempt,
        lease_until=lease_until,
    )


def serve(book: LimitBook, lease_until: datetime) -> tuple[LimitBook, list[Ticket]]:
    """Hand free slots to waiters, first in line first: (the book, the tickets served)."""
    if book.limit is None:  # no limit (any more): everyone waiting goes
        return book.model_copy(update={"waiting": ()}), list(book.waiting)
    used = {s.index for s in book.slots}
    free = [i for i in range(book.limit) if i not in used]
    served = list(book.waiting[: len(free)])
    slots = book.slots + tuple(
        reserve(t, i, lease_until) for t, i in zip(served, free, strict=False)
    )
    rest = book.waiting[len(served) :]
    return book.model_copy(update={"slots": slots, "waiting": rest}), served


def acquire(
    book: LimitBook, ticket: Ticket, lease_until: datetime
) -> tuple[LimitBook, bool, list[Ticket]]:
    """The attempt of `ticket` takes (or keeps, its lease extended) a slot: (book, holds, the
    other tickets served now, to wake). Without a free slot it waits in line, once."""
    if book.limit is None:
        return book, True, []
    held = [s for s in book.slots if s.holder == ticket.holder]
    if held:
        renewed = held[0].model_copy(update={"lease_until": max(held[0].lease_until, lease_until)})
        slots = tuple(renewed if s.holder == ticket.holder else s for s in book.slots)
        return book.model_copy(update={"slots": slots}), True, []
    if any(t.holder == ticket.holder for t in book.waiting):
        return book, False, []
    waiting = tuple(sorted((*book.waiting, ticket), key=rank))
    book, served = serve(book.model_copy(update={"waiting": waiting}), lease_until)
    mine = any(t.holder == ticket.holder for t in served)
    return book, mine, [t for t in served if t.holder != ticket.holder]


def release(book: LimitBook, holder: str, lease_until: datetime) -> tuple[LimitBook, list[Ticket]]:
    """Free what `holder` holds or waits for (an attempt that ended, or ended while waiting);
    the tickets its slot goes to."""
    book = book.model_copy(
        update={
            "slots": tuple(s for s in book.slots if s.holder != holder),
            "waiting": tuple(t for t in book.waiting if t.holder != holder),
        }
    )
    return serve(book, lease_until)


def set_limit(
    book: LimitBook, limit: int | None, lease_until: datetime
) -> tuple[LimitBook, list[Ticket]]:
    """A new limit: a raise serves waiters at once; a cut lets held slots run to their end
    (slots above the limit are not handed on)."""
    book = book.model_copy(update={"limit": limit})
    if limit is None:
        book = book.model_copy(update={"slots": ()})
    return serve(book, lease_until)


def state(book: LimitBook) -> LimitState:
    oldest = min((t.enqueued_at for t in book.waiting), default=None)
    return LimitState(
        key=book.key,
        limit=book.limit if book.limit is not None else 0,
        in_use=len(book.slots),
        waiters=len(book.waiting),
        oldest_wait=oldest,
        slots=book.slots,
        waiting=book.waiting,
    )
