"""RateStore over one book per key (engine.rates), for stores with one writer at a time
(memory, SQLite): each step is one atomic edit of the key's record."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from orchestrator.contracts import Rate, RateBook, RateState
from orchestrator.engine import rates

T = TypeVar("T")


class BookRates(ABC):
    @abstractmethod
    def _edit_rates(self, key: str, edit: Callable[[RateBook], tuple[RateBook, T]]) -> T:
        """Apply `edit` to the key's rate book (an empty one when none is kept) atomically."""

    @abstractmethod
    def _rate_books(self) -> list[RateBook]: ...

    def take_rate(self, rate: Rate, holder: str, now: datetime) -> datetime | None:
        return self._edit_rates(rate.key, lambda b: rates.take(b, rate, holder, now))

    def refund_rate(self, key: str, holder: str, at: datetime) -> None:
        self._edit_rates(key, lambda b: (rates.refund(b, holder, at), None))

    def rate_states(self, now: datetime) -> list[RateState]:
        books = sorted(self._rate_books(), key=lambda b: b.key)
        return [rates.state(b, now) for b in books if b.rate is not None]
