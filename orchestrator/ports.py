"""Ports: the small interfaces the services use. One adapter per service, plus in-memory ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, Protocol

from orchestrator.contracts import (
    DeadLetter,
    Envelope,
    FlowSpec,
    LimitState,
    OutboxEntry,
    Rate,
    RateState,
    Run,
    Slot,
    SlotHold,
    StoredBlock,
    TaskRun,
    Ticket,
)

Etag = object  # adapter-specific optimistic-concurrency token (a counter, an update_time)


@dataclass(frozen=True, slots=True)
class Snapshot:
    run: Run
    run_etag: Etag
    tasks: dict[str, TaskRun]
    etags: dict[str, Etag]
    outbox: tuple[OutboxEntry, ...] = ()


# counter name -> field -> value: small per-run documents that only ever take increments
Counts = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class Commit:
    """Conditional writes applied atomically: each record only if unchanged since it was read."""

    run_id: str
    run: Run | None = None
    run_etag: Etag | None = None
    # (record, etag read or None when the record must not exist yet)
    tasks: Sequence[tuple[TaskRun, Etag | None]] = ()
    outbox_add: Sequence[OutboxEntry] = ()
    outbox_done: Sequence[str] = ()
    # Blind increments, applied with the rest or not at all; `commit` returns their new values,
    # so exactly one writer sees a counter reach any given value (fan-in and finish are decided
    # by that writer, from its own commit, never from a snapshot read before it).
    increments: Counts = field(default_factory=dict)
    # Create-only markers: the commit conflicts when any exists (an exactly-once step was done).
    markers: Sequence[str] = ()


class Clock(Protocol):
    realtime: bool  # False: sleep() skips time instead of waiting

    def now(self) -> datetime: ...
    def sleep(self, seconds: float) -> None: ...


class EventBus(Protocol):
    def publish(self, topic: str, event: Envelope) -> None: ...
    def publish_all(self, topic: str, events: Sequence[Envelope]) -> None:
        """Publish concurrently; returns once every one is acknowledged (raises if any is not)."""
        ...


class BlobStore(Protocol):
    def put(self, uri: str, data: bytes, content_type: str, *, overwrite: bool = False) -> None:
        """Write once (identical bytes again: no-op; different: ConflictError) unless overwrite."""
        ...

    def get(self, uri: str) -> bytes: ...
    def get_range(self, uri: str, start: int, end: int) -> bytes:
        """Bytes `start` up to (not including) `end` of the object, fewer where it ends first
        (none when it ends before `start`); needs 0 <= start < end. NotFoundError when no
        object is there. One read of end - start bytes, whatever the object's size."""
        ...

    def list_uris(self, prefix: str) -> list[str]:
        """The URIs of the objects whose URI starts with `prefix` (`gs://BUCKET/` or
        `gs://BUCKET/PREFIX`), in name order; none when the bucket does not exist."""
        ...

    def delete(self, uri: str) -> None:
        """Remove the object (none there: nothing to do). Only for what kumoflow keeps for a
        while and then expires (the events waits take), never for a result."""
        ...


def split_uri(uri: str) -> tuple[str, str]:
    """`gs://BUCKET/NAME` as (BUCKET, NAME); ValueError for anything else (NAME may be empty)."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise ValueError(f"expected gs://BUCKET/OBJECT, got {uri!r}")
    bucket, _, name = uri[5:].partition("/")
    return bucket, name


def check_range(start: int, end: int) -> None:
    """The ranges every BlobStore adapter accepts in `get_range`."""
    if not 0 <= start < end:
        raise ValueError(f"a byte range needs 0 <= start < end, got [{start}, {end})")


class FlowStore(Protocol):
    def put_flow(self, spec: FlowSpec, *, deploy: bool = False) -> str:
        """Register a version; `deploy` also makes it the one its triggers start."""
        ...

    def get_flow(self, version: str) -> FlowSpec | None: ...
    def latest_version(self, flow: str) -> str | None: ...
    def deployed(self) -> list[FlowSpec]: ...


class StateStore(Protocol):
    def create_run(self, run: Run) -> bool:
        """Create-only: False when a run with this id exists (a duplicate trigger)."""
        ...

    def load(self, run_id: str, keys: Sequence[str] | None = None) -> Snapshot | None:
        """The run with the task records of `keys` (those that exist), in one round trip; with
        `keys=None` every task and the outbox too (O(run): CLI, cancel, flow retries only)."""
        ...

    def tasks(self, run_id: str, keys: Sequence[str]) -> tuple[dict[str, TaskRun], dict[str, Etag]]:
        """The task records of `keys` that exist, with their etags, without the run document:
        an orchestrator instance that holds the run already reads one document per event."""
        ...

    def commit(self, commit: Commit) -> Counts:
        """Raises ConflictError when any precondition fails; then nothing was written.
        Returns the values of the counters it incremented, as of this commit."""
        ...

    def counters(self, run_id: str, names: Sequence[str]) -> Counts:
        """Current values of counters (absent ones as {}): the redelivery path re-derives
        what a crash after commit left undecided."""
        ...

    def list_runs(
        self, flow: str | None = None, limit: int = 50, before: datetime | None = None
    ) -> list[Run]:
        """Newest first; `before` (a created_at) pages on from where the last page ended."""
        ...


class TimerStore(Protocol):
    """Outbox entries that wait for a time: production fires them from a scheduled sweep."""

    def due(
        self, now: datetime, limit: int = 100, after: OutboxEntry | None = None
    ) -> list[OutboxEntry]:
        """Entries due by `now`, oldest first, starting after `after` (a page cursor)."""
        ...

    def next_due(self) -> datetime | None: ...
    def entry(self, run_id: str, entry_id: str) -> OutboxEntry | None:
        """One outbox entry as stored now (None when it is done): what a timer's own push
        fires, read from the store, never from the push."""
        ...

    def expired_leases(
        self, now: datetime, limit: int = 100, after: TaskRun | None = None
    ) -> list[TaskRun]:
        """Running attempts whose worker stopped renewing its claim (died mid-attempt), oldest
        lease first, starting after `after` (a page cursor, as `due`)."""
        ...

    def stale_dispatches(
        self, now: datetime, limit: int = 100, after: TaskRun | None = None
    ) -> list[TaskRun]:
        """Queued attempts nobody claimed by their `redispatch_at` (the request may be lost),
        oldest first, starting after `after` (a page cursor, as `due`)."""
        ...


class TimerQueue(Protocol):
    """Schedules a push for each timer at its due time (Cloud Tasks in the cloud, its stand-in
    on the stack), so a timer fires on time rather than at the sweeper's next tick. Best
    effort: a push that never comes is the sweep's to fire; one that comes twice, or early,
    changes nothing (firing reads the entry and is idempotent)."""

    def arm(self, entries: Sequence[OutboxEntry]) -> None:
        """Schedule a push per entry at its `due_at`; the same (entry, due_at) again is one push."""
        ...


class DeadLetterStore(Protocol):
    def record(self, letter: DeadLetter) -> None: ...
    def list(self, limit: int = 100) -> list[DeadLetter]: ...
    def get(self, letter_id: str) -> DeadLetter | None: ...


class Acquired(NamedTuple):
    """What LimitStore.acquire did: whether the attempt holds a slot, the tickets it served,
    and which slot it took when its store says (None: the release looks it up)."""

    holds: bool
    woken: list[Ticket]
    hold: SlotHold | None = None


class LimitStore(Protocol):
    """Concurrency limits by key (see engine.limits for the rules every adapter applies). Each
    method returns the tickets it served: their attempts hold a slot now and must be woken
    (their requests sent again) by the caller."""

    def set_limit(self, key: str, limit: int | None, lease_until: datetime) -> list[Ticket]:
        """Set (None: remove) a key's limit; a raise serves waiters."""
        ...

    def limit_states(self, key: str | None = None) -> list[LimitState]:
        """Every key that has a limit, slots in use or waiters (or `key` alone), by key."""
        ...

    def acquire(self, ticket: Ticket, lease_until: datetime) -> Acquired:
        """Take or keep a slot for the ticket's attempt (holds), or wait in line once (not).
        A key without a limit: it holds, and nothing is stored."""
        ...

    def release(
        self, key: str, holder: str, lease_until: datetime, hold: SlotHold | None = None
    ) -> list[Ticket]:
        """Free the slot `holder` holds (or its place in line): idempotent. `hold`, what
        `holder`'s acquire returned, lets a store free that slot without looking it up."""
        ...

    def expired_slots(self, now: datetime, limit: int = 100) -> list[Slot]:
        """Slots whose lease ran out by `now`, oldest first: the sweeper renews each one whose
        attempt still runs and releases the others."""
        ...


class RateStore(Protocol):
    """Rate limits by key (see engine.rates for the rules every adapter applies): each call is
    one atomic read-modify-write of the key's one record."""

    def take_rate(self, rate: Rate, holder: str, now: datetime) -> datetime | None:
        """A permit for `holder` (an attempt) to start at `now` (None), or when to try again.
        A ConflictError when a concurrent take won (Firestore): run it again."""
        ...

    def refund_rate(self, key: str, holder: str, at: datetime) -> None:
        """`holder` did not start after all: the permit it took at `at` counts no more (none
        when a duplicate moved it since; idempotent). A ConflictError: run it again."""
        ...

    def rate_states(self, now: datetime) -> list[RateState]:
        """Every key a rate was taken under, by key."""
        ...


class RecordStore(
    FlowStore, StateStore, TimerStore, DeadLetterStore, LimitStore, RateStore, Protocol
):
    """One store keeping all six kinds of records: MemoryStore, SqliteStore, FirestoreStore."""


class BlockStore(Protocol):
    """Named configuration (`orchestrator.gcp` blocks): Firestore on the stack and in the cloud,
    a folder of files for in-process runs."""

    def put_block(self, block: StoredBlock, *, overwrite: bool = False) -> None:
        """ConflictError when one of that kind and name exists and not `overwrite`."""
        ...

    def get_block(self, kind: str, name: str) -> StoredBlock | None: ...
    def list_blocks(self, kind: str | None = None) -> list[StoredBlock]: ...
    def delete_block(self, kind: str, name: str) -> bool: ...


class JobState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # the entrypoint exited 0
    FAILED = "failed"  # it exited otherwise, timed out, or was cancelled


@dataclass(frozen=True, slots=True)
class JobExecution:
    name: str  # the execution's full name
    logs_url: str | None = None


@dataclass(frozen=True, slots=True)
class JobStatus:
    state: JobState
    message: str = ""


class JobRunner(Protocol):
    """Runs a `runtime="job"` task's attempt as a job execution of the task worker's own code
    (Cloud Run jobs in the cloud and on the stack; a thread, or a step of a test, in memory).
    The attempt's identity travels as env; the execution's own state says how it ended."""

    def start(self, env: Mapping[str, str]) -> JobExecution:
        """Raises a retryable KumoflowError when the API could not be reached."""
        ...

    def status(self, name: str) -> JobStatus:
        """Raises a retryable KumoflowError when the API could not tell."""
        ...

    def cancel(self, name: str) -> None:
        """Stop it; nothing when it has ended."""
        ...
