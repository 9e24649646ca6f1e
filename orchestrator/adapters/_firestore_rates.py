"""RateStore on Firestore: one document per rate key (see engine.rates for the rules).

Layout:
  kumoflow_rates/{key}   {"rate": {...}, "starts": [{"holder", "at"}, ...], "horizon"}

Each take or refund reads the document and writes it back conditional on its `update_time`
(create-only when it did not exist): one read and one write, and a ConflictError when another
instance wrote in between (the caller runs it again: runtime._retry.retried). No read-write
transaction: the precondition fails fast instead of holding a lock.

Throughput (stated, not measured in production): every start of a rate-limited attempt writes
its key's document once, and an attempt over the rate once more per refusal. Firestore's
guidance is about 1 sustained write/s per document (a soft limit: in practice a document
takes several times that before writes slow down). So one key carries rates of about one start
per second in production within the guidance, a few per second in practice; a faster key would
need its window split across N documents (N windows of count / N each, picked by a hash of
the attempt: still exact, as no window then exceeds its share) — not built. A burst of many
attempts arriving at once contends on the document once per attempt (each retried on
conflict); that is the cost of exactness here, paid once per attempt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from orchestrator.contracts import Rate, RateBook, RateState
from orchestrator.engine import rates
from orchestrator.errors import ConflictError


class FirestoreRates:
    """Mixed into FirestoreStore: `_db` is its client, `_rate_docs` its rates collection."""

    _db: firestore.Client
    _rate_docs: Any

    def take_rate(self, rate: Rate, holder: str, now: datetime) -> datetime | None:
        ref = self._rate_docs.document(rate.key)
        snap = ref.get()
        book, later = rates.take(_book(rate.key, snap), rate, holder, now)
        self._put(ref, snap, book)
        return later

    def refund_rate(self, key: str, holder: str, at: datetime) -> None:
        ref = self._rate_docs.document(key)
        snap = ref.get()
        if not snap.exists:
            return
        book = _book(key, snap)
        kept = rates.refund(book, holder, at)
        if kept != book:
            self._put(ref, snap, kept)

    def rate_states(self, now: datetime) -> list[RateState]:
        books = [_book(s.id, s) for s in self._rate_docs.stream()]
        return [rates.state(b, now) for b in sorted(books, key=lambda b: b.key) if b.rate]

    def _put(self, ref: Any, snap: Any, book: RateBook) -> None:
        doc = book.model_dump(mode="python")
        try:
            if snap.exists:
                ref.update(doc, option=self._db.write_option(last_update_time=snap.update_time))
            else:
                ref.create(doc)
        except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.Aborted) as e:
            raise ConflictError(f"rate {book.key}: a concurrent take won") from e


def _book(key: str, snap: Any) -> RateBook:
    return RateBook.model_validate(snap.to_dict()) if snap.exists else RateBook(key=key)
