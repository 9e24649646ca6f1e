"""LimitStore on Firestore, with no hot document (see engine.limits for the rules).

Layout, per key:
  kumoflow_limits/{key}                 {"limit": N}: written by `kumoflow limits set` alone
  kumoflow_limits/{key}/slots/{i}       one document per slot (i < N): its holder ("" when free)
                                        and lease; `waited` once a waiter saw it held; `retired`
                                        once a cut put it above the limit
  kumoflow_limits/{key}/tickets/{who}   one document per waiting attempt, with its `rank`

Why a ticket queue over sharded slot documents: a waiter writes only its own ticket (create-
only), so 10,000 waiters of one key write 10,000 documents and never one record. A slot changes
hands only in a write conditional on the slot document as read (and, handed to a waiter, on its
ticket as read): at most as many writers contend as slots free up at once, never the waiters.
Which free slot and which of the first tickets a server takes is spread over the first SPREAD of
each (a taker's, once it lost one), so concurrent servers rarely meet on one document: within
those SPREAD places the line is not strictly FIFO (the order is exact beyond them, and with one
server at a time).

The common case, nobody waiting, costs 1 read and 2 writes per attempt (benchmarks.limits
measured 1.2 reads at 300 wide: takes lost to concurrent takers, retried):
- a take is one query for a slot the attempt holds already or the lowest free one (holder in
  [itself, ""], its own first) and one conditional write, without a ticket; it names the slot
  and its update time after the write (a SlotHold), which the claim records on the attempt.
  A take lost to a concurrent taker (they all read the lowest free slot) reads again one free
  slot, from a place drawn at random among the SPREAD above the one it lost;
- a release is one write to that slot, conditional on that update time: unchanged since the
  take, the slot is held by the releaser, not marked `waited` and not retired, so freeing it
  is all a release has to do. Anything that moved it since fails the condition (the sweeper
  renewed it, a waiter marked it, a cut retired it, an earlier release freed it and another
  took it): the release then does what it does without a SlotHold, one query for its slot
  and one conditional write, and reads the line only when its slot is marked `waited`. A
  waiter, once it finds no slot free, marks every held slot not marked yet (each conditional
  on the slot as read: a slot freed meanwhile is served instead), and a slot handed to a
  waiter stays marked (its holder gets no SlotHold for it).
Each side writes before it looks at the other (a waiter: its ticket, then the slots; a release:
its slot, whose conditional write fails if a waiter marked it since it was read or taken), so
a free slot and a waiter never both go unseen, and a taker that finds a slot free overtakes
only waiters that arrive at the same moment. The key's limit is cached per process for
LIMIT_CACHE_S: the slot documents, not the cached value, decide who holds (a cut retires held
slots above the limit and deletes free ones; a taker that finds no slot reads the limit anew).
Queries read slots by `holder` (and `index`: a composite index) and `waited`, tickets by `rank`;
the sweeper reads expired slots by a collection-group query on `lease_until`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore

from orchestrator.contracts import LimitState, Slot, SlotHold, Ticket
from orchestrator.engine import limits
from orchestrator.ports import Acquired

SPREAD = 8  # free slots (and first tickets) a server picks among at random
FIELDS = ("key", "index", "holder", "run_id", "task", "attempt", "lease_until")
FREE = ""  # a free slot's holder: a value `in` queries match (they never match null)
LIMIT_CACHE_S = 5.0  # how long a process trusts a key's limit it read
TRIES = 3  # fast-path takes lost to concurrent takers before waiting in line instead


class FirestoreLimits:
    """Mixed into FirestoreStore: `_db` is its client, `_limit_docs` its limits collection."""

    _db: firestore.Client
    _limit_docs: Any

    def _key_ref(self, key: str) -> Any:
        return self._limit_docs.document(key)

    def set_limit(self, key: str, limit: int | None, lease_until: datetime) -> list[Ticket]:
        ref = self._key_ref(key)
        ref.set({"key": key, "limit": limit})
        self._cache_limit(key, limit)
        slots = ref.collection("slots")
        indexes = {int(s.id) for s in slots.select([]).stream()} | set(range(limit or 0))
        for i in sorted(indexes):
            _reconcile(self._db, slots.document(str(i)), key, i, limit)
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
                if s.get("holder")
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

    def acquire(self, ticket: Ticket, lease_until: datetime) -> Acquired:
        if self._cached_limit(ticket.key) is None:
            return Acquired(True, [])
        lost = None  # the slot the last take lost to a concurrent taker
        for _ in range(TRIES):  # the fast path: a slot held already or a free one, no ticket
            found = self._held_or_free(ticket.key, ticket.holder, lost)
            if found is None:
                break
            if found.get("holder") == ticket.holder:
                if found.get("lease_until") is None or found.get("lease_until") < lease_until:
                    found.reference.update({"lease_until": lease_until})
                    return Acquired(True, [])  # not as read: a waiter may have marked it since
                if _waited(found) or _retired(found):  # its release does more than free it
                    return Acquired(True, [])
                return Acquired(True, [], _hold(ticket.key, found, _version(found.update_time)))
            taken = _take(self._db, found, ticket, lease_until)
            if taken is not None:  # as taken: neither marked nor retired
                return Acquired(True, [], _hold(ticket.key, found, taken))
            lost = found.get("index")
        ref = self._key_ref(ticket.key)
        doc = ticket.model_dump(mode="python") | {"rank": limits.rank(ticket)[0]}
        try:
            ref.collection("tickets").document(_who(ticket.holder)).create(doc)
        except gexc.AlreadyExists:
            return Acquired(False, [])  # in line already (a duplicate request)
        if self._limit_of(ticket.key) is None:  # removed (since this process cached it)
            ref.collection("tickets").document(_who(ticket.holder)).delete()
            return Acquired(True, [])
        woken = self._serve(ticket.key, lease_until, after=self._mark_waited)
        mine = any(t.holder == ticket.holder for t in woken)
        if not mine and self._held(ticket.key, ticket.holder) is not None:
            mine = True  # a concurrent server handed it a slot
        return Acquired(mine, [t for t in woken if t.holder != ticket.holder])

    def release(
        self, key: str, holder: str, lease_until: datetime, hold: SlotHold | None = None
    ) -> list[Ticket]:
        if hold is not None and hold.key == key and self._free_as_taken(hold):
            return []  # the slot as its take left it: nobody marked it, nobody waits for it
        # One slot per release: after a rare duplicate take an attempt holds two, and a stale
        # ticket's wake-up releases one while the attempt runs on the other; its end (or the
        # sweeper, once the lease runs out) frees the other.
        found = self._held(key, holder)
        held = [found] if found is not None else []
        if not held:  # ended while waiting (or released already): its ticket goes
            self._key_ref(key).collection("tickets").document(_who(holder)).delete()
            return []
        line = False  # whether a waiter marked the slot: only then is the line read
        while held:  # each a conditional write: read again when the slot moved since
            slot = held.pop()
            try:
                if _retired(slot):  # above the limit since a cut: the slot goes
                    slot.reference.delete(option=self._db.write_option(**_as_read(slot)))
                else:
                    _free(self._db, slot)
                line = line or _waited(slot)
            except (gexc.FailedPrecondition, gexc.NotFound):
                again = slot.reference.get()
                if again.exists and again.get("holder") == holder:
                    held.append(again)
        return self._serve(key, lease_until) if line else []

    def expired_slots(self, now: datetime, limit: int = 100) -> list[Slot]:
        query = (
            self._db.collection_group("slots")
            .where(filter=firestore.FieldFilter("lease_until", "<=", now))
            .order_by("lease_until")
            .limit(limit)
        )
        return [_slot(s.to_dict() or {}) for s in query.stream() if s.get("holder")]

    # --- helpers

    def _free_as_taken(self, hold: SlotHold) -> bool:
        """Free the slot `hold` names in one write, conditional on its update time at the
        take: then its holder is the releasing attempt and it is neither marked as waited for
        nor retired, so freeing it is all a release does. False when it moved since (renewed,
        marked by a waiter, retired by a cut, freed already): the caller looks it up."""
        ref = self._key_ref(hold.key).collection("slots").document(str(hold.index))
        updated = DatetimeWithNanoseconds.from_rfc3339(hold.updated)  # type: ignore[no-untyped-call]
        try:
            ref.update(
                {"holder": FREE, "lease_until": None},
                option=self._db.write_option(last_update_time=updated),
            )
        except (gexc.FailedPrecondition, gexc.NotFound):
            return False
        return True

    def _cache_limit(self, key: str, limit: int | None) -> None:
        if "_limit_cache" not in self.__dict__:
            self.__dict__["_limit_cache"] = {}
        self.__dict__["_limit_cache"][key] = (time.monotonic() + LIMIT_CACHE_S, limit)

    def _cached_limit(self, key: str) -> int | None:
        """The key's limit, read at most every LIMIT_CACHE_S while it has one (a key without
        one is read every time: a limit set now applies to the next taker)."""
        until, limit = self.__dict__.get("_limit_cache", {}).get(key, (0.0, None))
        if limit is not None and time.monotonic() < until:
            return int(limit)
        return self._limit_of(key)

    def _limit_of(self, key: str) -> int | None:
        snap = self._key_ref(key).get()
        limit: int | None = snap.get("limit") if snap.exists else None
        self._cache_limit(key, limit)
        return limit

    def _held(self, key: str, holder: str) -> Any:
        query = (
            self._key_ref(key)
            .collection("slots")
            .where(filter=firestore.FieldFilter("holder", "==", holder))
            .limit(1)
        )
        found = list(query.stream())
        return found[0] if found else None

    def _held_or_free(self, key: str, holder: str, lost: int | None = None) -> Any:
        """In one query reading one document: the slot `holder` holds, else the lowest free
        one; None: neither. Strings sort after "", so its own slot comes first in descending
        order. After a take of slot `lost` lost to a concurrent taker (they all read the
        lowest free one first), the lowest free one from a place drawn at random among the
        SPREAD above it (else the lowest again): past its own, which only a duplicate of its
        attempt taking one at this very moment could hold (then it holds two, see release)."""
        query = (
            self._key_ref(key)
            .collection("slots")
            .where(filter=firestore.FieldFilter("holder", "in", [holder, FREE]))
            .order_by("holder", direction=firestore.Query.DESCENDING)
            .order_by("index")  # the lowest free one (a composite index, infra's wiring)
            .limit(1)
        )
        found: list[Any] = []
        if lost is not None:
            start = {"holder": FREE, "index": lost + 1 + random.randrange(SPREAD)}
            found = list(query.start_at(start).stream())
        found = found or list(query.stream())
        if found and found[0].get("holder") == holder:
            return found[0]
        return found[0] if found and not _retired(found[0]) else None

    def _mark_waited(self, key: str) -> bool:
        """Mark every held slot of the key that is not marked yet as waited for, so that its
        release reads the line; each mark is conditional on the slot as read. True when a
        slot was found free instead (freed since the caller looked: serve again)."""
        query = (
            self._key_ref(key)
            .collection("slots")
            .where(filter=firestore.FieldFilter("waited", "==", False))
        )
        pending = list(query.stream())
        while pending:
            slot = pending.pop()
            if not slot.exists or _retired(slot):
                continue
            if not slot.get("holder"):
                return True
            try:
                slot.reference.update(
                    {"waited": True}, option=self._db.write_option(**_as_read(slot))
                )
            except (gexc.FailedPrecondition, gexc.NotFound):
                pending.append(slot.reference.get())  # freed, renewed or handed since read
        return False

    def _serve(
        self, key: str, lease_until: datetime, after: Callable[[str], bool] | None = None
    ) -> list[Ticket]:
        """Hand free slots to the first tickets in line until either runs out. The line is
        read first, one ticket (a release that finds nobody waiting stops at one read), and
        as many as there are free slots, up to SPREAD, once someone waits. With `after`, a
        waiter's: called once no slot is free, True to look again (a slot came free)."""
        ref = self._key_ref(key)
        tickets = ref.collection("tickets").order_by("rank")
        served: list[Ticket] = []
        while True:
            first = list(tickets.limit(1).stream())
            if not first:
                return served
            free = list(
                ref.collection("slots")
                .where(filter=firestore.FieldFilter("holder", "==", FREE))
                .limit(SPREAD)
                .stream()
            )
            free = [f for f in free if not _retired(f)]
            if not free and after is not None and after(key):
                continue
            if not free:
                return served
            if len(free) > 1:
                first = list(tickets.limit(len(free)).stream()) or first
            got = _hand(self._db, random.choice(free), random.choice(first), lease_until)
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
    taken = limits.reserve(found, slot.get("index"), lease_until).model_dump(mode="python")
    batch = db.batch()  # others may wait behind it: its release reads the line
    batch.update(slot.reference, taken | {"waited": True}, option=db.write_option(**_as_read(slot)))
    batch.delete(ticket.reference, option=db.write_option(**_as_read(ticket)))
    try:
        batch.commit()
    except (gexc.FailedPrecondition, gexc.NotFound, gexc.Aborted):
        return None
    return found


def _take(db: firestore.Client, slot: Any, ticket: Ticket, lease_until: datetime) -> str | None:
    """Take the free `slot` for `ticket`'s attempt, as read: its version after the take (see
    _version), None when another got it first."""
    taken = limits.reserve(ticket, slot.get("index"), lease_until).model_dump(mode="python")
    try:  # nobody waited when it was free: its release need not read the line
        written = slot.reference.update(
            taken | {"waited": False}, option=db.write_option(**_as_read(slot))
        )
    except (gexc.FailedPrecondition, gexc.NotFound):
        return None
    return _version(written.update_time)


def _hold(key: str, slot: Any, version: str) -> SlotHold:
    """What a release needs to free `slot` (a snapshot of it) as it was at `version`."""
    return SlotHold(key=key, index=slot.get("index"), updated=version)


def _version(update_time: Any) -> str:
    """A document's update time as SlotHold keeps it: RFC 3339 to the nanosecond."""
    return str(update_time.rfc3339())


def _free(db: firestore.Client, held: Any) -> None:
    """Free the slot `held` (a snapshot of it, held): FailedPrecondition when it moved since
    (renewed by the sweeper, retired by a cut: the caller reads it again)."""
    held.reference.update(
        {"holder": FREE, "lease_until": None}, option=db.write_option(**_as_read(held))
    )


def _waited(snap: Any) -> bool:
    return (snap.to_dict() or {}).get("waited") is not False  # unknown: read the line


def _retired(snap: Any) -> bool:
    return bool((snap.to_dict() or {}).get("retired"))  # absent on slots never cut


def _as_read(snap: Any) -> dict[str, Any]:
    return {"last_update_time": snap.update_time}


def _reconcile(db: firestore.Client, doc: Any, key: str, index: int, limit: int | None) -> None:
    """Bring slot `index` in line with a new limit, conditional on it as read (a holder may
    free it meanwhile): below the limit it exists (free if new) and is not retired; above it
    a free one goes and a held one is retired, so its holder deletes it when it ends."""
    over = limit is None or index >= limit
    while True:
        snap = doc.get()
        try:
            if not snap.exists:
                if not over:
                    doc.create({"key": key, "index": index, "holder": FREE, "waited": False})
            elif not snap.get("holder") and over:
                doc.delete(option=db.write_option(**_as_read(snap)))
            elif snap.get("holder") is None:  # free in the layout before FREE was ""
                doc.update(
                    {"holder": FREE, "waited": False}, option=db.write_option(**_as_read(snap))
                )
                continue
            elif _retired(snap) != over:
                doc.update({"retired": over}, option=db.write_option(**_as_read(snap)))
            return
        except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.NotFound):
            continue  # it moved since read: look again
