"""Ports: the small interfaces the services use. One adapter per service, plus in-memory ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from contracts import DeadLetter, Envelope, FlowSpec, OutboxEntry, Run, TaskRun

Etag = object  # adapter-specific optimistic-concurrency token (a counter, an update_time)


@dataclass(frozen=True, slots=True)
class Snapshot:
    run: Run
    run_etag: Etag
    tasks: dict[str, TaskRun]
    etags: dict[str, Etag]
    outbox: tuple[OutboxEntry, ...] = ()


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


class Clock(Protocol):
    realtime: bool  # False: sleep() skips time instead of waiting

    def now(self) -> datetime: ...
    def sleep(self, seconds: float) -> None: ...


class EventBus(Protocol):
    def publish(self, topic: str, event: Envelope) -> None: ...


class BlobStore(Protocol):
    def put(self, uri: str, data: bytes, content_type: str, *, overwrite: bool = False) -> None:
        """Write once (identical bytes again: no-op; different: ConflictError) unless overwrite."""
        ...

    def get(self, uri: str) -> bytes: ...


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

    def load(self, run_id: str) -> Snapshot | None: ...
    def load_task(
        self, run_id: str, key: str
    ) -> tuple[Run, TaskRun | None, Etag | None] | None: ...
    def commit(self, commit: Commit) -> None:
        """Raises ConflictError when any precondition fails; then nothing was written."""
        ...

    def list_runs(self, flow: str | None = None, limit: int = 50) -> list[Run]: ...


class TimerStore(Protocol):
    """Outbox entries that wait for a time: production fires them from a scheduled sweep."""

    def due(self, now: datetime, limit: int = 100) -> list[OutboxEntry]: ...
    def next_due(self) -> datetime | None: ...
    def expired_leases(self, now: datetime, limit: int = 100) -> list[TaskRun]:
        """Running attempts whose worker stopped renewing its claim: died mid-attempt."""
        ...


class DeadLetterStore(Protocol):
    def record(self, letter: DeadLetter) -> None: ...
    def list(self, limit: int = 100) -> list[DeadLetter]: ...
