"""LimitStore on Firestore, with no hot document (see engine.limits for the rules).

Layout, per key:
  kumoflow_limits/{key}                 {"limit": N}: written by `kumoflow limits set` alone
  kumoflow_limits/{key}/slots/{i}       one document per slot (i < N): its holder and lease
  kumoflow_limits/{key}/tickets/{who}   one document per waiting attempt, with its `rank`

Why a ticket queue over sharded slot documents: a waiter writes only its own ticket (create-
only), so 10,000 waiters of one key write 10,000 documents and never one record. Every holder,
waiter or not, enters through its ticket, and a slot changes hands only in a transaction over one
slot document and one ticket document (`_hand`): at most as many writers contend as slots free
up at once, never the waiters. Which free slot and which of the first tickets a server takes is
spread over the first SPREAD of each, so concurrent servers rarely meet on one document: within
those SPREAD places the line is not strictly FIFO (the order is exact beyond them, and with one
server at a time). Queries read the slots by `holder` and the tickets by `rank` (single-field
indexes); the sweeper reads expired slots by a collection-group query on `lease_until`.

Cost (counted from the code, not measured): a limited attempt that finds a slot free costs
about 3 writes (its ticket, the hand-over batch of 2) and 4 queries or gets at the take, 2
writes and 4 at the release; a query is billed per document it returns (up to SPREAD), so a
limited task costs some 10-25 operations more than an unlimited one. Unlike the memory and
SQLite books, that is above the 3 the design aimed at: taking a slot without a ticket when none
wait, and caching the key's limit, are the obvious next steps.
"""

from __future__ import annotations

import contextlib
import random
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from orchestrator.contracts import LimitState, Slot, Ticket
from orchestrator.engine import limits

SPREAD = 8  # free slots (and first tickets) a server picks among at random
FIELDS = ("key", "index", "holder", "run_id", "task", "attempt", "lease_until")


class FirestoreLimits:
    """Mixed into FirestoreStore: `_db` is its client, `_limit_docs` its limits collection."""

    _db: firestore.Client
    _limit_docs: Any

    def _key_ref(self, key: str) -> Any:
        return self._limit_docs.document(key)

    def _limit_of(self, key: str) -> int | None:
        snap = self._key_ref(key).get()
        return snap.get("limit") if snap.exists else None

    def set_limit(self, key: str, limit: int | None, lease_until: datetime) -> list[Ticket]:
        ref = self._key_ref(key)
        ref.set({"key": key, "limit": limit})
        slots = ref.collection("slots")
        for i in range(limit or 0):
            with contextlib.suppress(gexc.AlreadyExists):
                slots.document(str(i)).create({"key": key, "index": i, "holder": None})
        for snap in slots.where(filter=firestore.FieldFilter("holder", "==", None)).stream():
            if limit is None or snap.get("index") >= limit:  # a cut: free ones above go now
                snap.reference.delete()
        if limit is None:  # no limit any more: every waiter goes
            woken = [self._ticket(s.to_dict() or {}) for s in ref.collection("tickets").stream()]
            for t in woken:
                ref.collection("tickets").document(_who(t.holder)).delete()
            return woken
        return self._serve(key, lease_until)

    def limit_states(self, key: str | None = None) -> list[LimitState]:
        keys = [key] if key is not None else [s.id for s in self._limit_docs.stream()]
        states = []
        for k in sorted(keys):
            ref = self._key_ref(k)
            snap = ref.get()
            if not snap.exists:
                continue
            held = [
                _slot(s.to_dict() or {})
                for s in ref.collection("slots").stream()
                if s.get("holder") is not None
            ]
            waiting = [self._ticket(s.to_dict() or {}) for s in ref.collection("tickets").stream()]
            waiting.sort(key=limits.rank)
            if snap.get("limit") is None and not held and not waiting:
                continue  # removed, and nothing left of it
            states.append(
                LimitState(
                    key=k,
                    limit=snap.get("limit") or 0,
                    in_use=len(held),
                    waiters=len(waiting),
                    oldest_wait=min((t.enqueued_at for t in waiting), default=None),
                    slots=tuple(sorted(held, key=lambda s: s.index)),
                    waiting=tuple(waiting),
                )
            )
        return states

    def acquire(self, ticket: Ticket, lease_until: datetime) -> tuple[bool, list[Ticket]]:
        if self._limit_of(ticket.key) is None:
            return True, []
        ref = self._key_ref(ticket.key)
        held = self._held(ticket.key, ticket.holder)
        if held is not None:
            if held.get("lease_until") is None or held.get("lease_until") < lease_until:
                held.reference.update({"lease_until": lease_until})
            return True, []
        doc = ticket.model_dump(mode="python") | {"rank": limits.rank(ticket)[0]}
        try:
            ref.collection("tickets").document(_who(ticket.holder)).create(doc)
        except gexc.AlreadyExists:
            return False, []  # in line already (a duplicate request)
        woken = self._serve(ticket.key, lease_until)
        mine = any(t.holder == ticket.holder for t in woken)
        if not mine and self._held(ticket.key, ticket.holder) is not None:
            mine = True  # a concurrent server handed it a slot
        return mine, [t for t in woken if t.holder != ticket.holder]

    def release(self, key: str, holder: str, lease_until: datetime) -> list[Ticket]:
        ref = self._key_ref(key)
        ref.collection("tickets").document(_who(holder)).delete()  # ended while waiting
        held = self._held(key, holder)
        if held is not None:
            limit = self._limit_of(key)
            if limit is None or held.get("index") >= limit:
                held.reference.delete()  # the limit was cut (or removed): the slot goes
            else:
                with contextlib.suppress(gexc.FailedPrecondition, gexc.NotFound):
                    _free(self._db, held)
        return self._serve(key, lease_until)

    def expired_slots(self, now: datetime, limit: int = 100) -> list[Slot]:
        query = (
            self._db.collection_group("slots")
            .where(filter=firestore.FieldFilter("lease_until", "<=", now))
            .order_by("lease_until")
            .limit(limit)
        )
        return [_slot(s.to_dict() or {}) for s in query.stream() if s.get("holder")]

    # --- helpers

    def _held(self, key: str, holder: str) -> Any:
        query = (
            self._key_ref(key)
            .collection("slots")
            .where(filter=firestore.FieldFilter("holder", "==", holder))
            .limit(1)
        )
        found = list(query.stream())
        return found[0] if found else None

    def _serve(self, key: str, lease_until: datetime) -> list[Ticket]:
        """Hand free slots to the first tickets in line until either runs out."""
        ref = self._key_ref(key)
        served: list[Ticket] = []
        while True:
            free = list(
                ref.collection("slots")
                .where(filter=firestore.FieldFilter("holder", "==", None))
                .limit(SPREAD)
                .stream()
            )
            if not free:
                return served
            first = list(ref.collection("tickets").order_by("rank").limit(SPREAD).stream())
            if not first:
                return served
            slot = random.choice(free)
            ticket = random.choice(first[: len(free)])
            got = _hand(self._db, slot, ticket, lease_until)
            if got is not None:
                served.append(got)

    @staticmethod
    def _ticket(doc: dict[str, Any]) -> Ticket:
        doc.pop("rank", None)
        return Ticket.model_validate(doc)


def _who(holder: str) -> str:
    return holder.replace("/", "~")  # a document id: `/` separates paths


def _slot(doc: dict[str, Any]) -> Slot:
    return Slot.model_validate({f: doc[f] for f in FIELDS})


def _hand(db: firestore.Client, slot: Any, ticket: Any, lease_until: datetime) -> Ticket | None:
    """Give the free `slot` to `ticket`'s attempt and take the ticket out of line, in one
    batch conditional on both being as read (no read-write transaction: two of those on one
    pair deadlock upgrading their read locks); None when another server got there first."""
    found = FirestoreLimits._ticket(ticket.to_dict() or {})
    taken = limits.reserve(found, slot.get("index"), lease_until)
    batch = db.batch()
    batch.update(
        slot.reference,
        taken.model_dump(mode="python"),
        option=db.write_option(last_update_time=slot.update_time),
    )
    batch.delete(ticket.reference, option=db.write_option(last_update_time=ticket.update_time))
    try:
        batch.commit()
    except (gexc.FailedPrecondition, gexc.NotFound, gexc.Aborted):
        return None
    return found


def _free(db: firestore.Client, held: Any) -> None:
    """Free the slot `held` (a snapshot of it, held): a no-op when it moved since (renewed by
    the sweeper: the caller reads it again)."""
    held.reference.update(
        {"holder": None, "lease_until": None},
        option=db.write_option(last_update_time=held.update_time),
    )
