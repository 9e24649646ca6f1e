"""LimitStore over one book per key (engine.limits), for stores with one writer at a time
(memory, SQLite): there a key's book is no hot record, since nothing contends on it, and a
release finds its slot in the book it reads anyway (it takes no SlotHold)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from orchestrator.contracts import LimitBook, LimitState, Slot, SlotHold, Ticket
from orchestrator.engine import limits
from orchestrator.ports import Acquired

T = TypeVar("T")


class BookLimits(ABC):
    @abstractmethod
    def _edit_book(self, key: str, edit: Callable[[LimitBook], tuple[LimitBook, T]]) -> T:
        """Apply `edit` to the key's book (an empty one when none is kept) atomically."""

    @abstractmethod
    def _books(self) -> list[LimitBook]: ...

    def set_limit(self, key: str, limit: int | None, lease_until: datetime) -> list[Ticket]:
        return self._edit_book(key, lambda b: limits.set_limit(b, limit, lease_until))

    def limit_states(self, key: str | None = None) -> list[LimitState]:
        books = [b for b in self._books() if key is None or b.key == key]
        return [
            limits.state(b)
            for b in sorted(books, key=lambda b: b.key)
            if b.limit is not None or b.slots or b.waiting
        ]

    def acquire(self, ticket: Ticket, lease_until: datetime) -> Acquired:
        def edit(book: LimitBook) -> tuple[LimitBook, Acquired]:
            book, holds, woken = limits.acquire(book, ticket, lease_until)
            return book, Acquired(holds, woken)

        return self._edit_book(ticket.key, edit)

    def release(
        self, key: str, holder: str, lease_until: datetime, hold: SlotHold | None = None
    ) -> list[Ticket]:
        return self._edit_book(key, lambda b: limits.release(b, holder, lease_until))

    def expired_slots(self, now: datetime, limit: int = 100) -> list[Slot]:
        found = [s for b in self._books() for s in b.slots if s.lease_until <= now]
        return sorted(found, key=lambda s: (s.lease_until, s.key, s.index))[:limit]
