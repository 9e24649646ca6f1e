"""In-memory adapters: fast, thread-safe, and held to the same contract tests as the cloud ones."""

from __future__ import annotations

import heapq
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from orchestrator.adapters._due import DueTasks
from orchestrator.adapters._limits import BookLimits
from orchestrator.adapters._rates import BookRates
from orchestrator.contracts import (
    DeadLetter,
    Envelope,
    FlowSpec,
    LimitBook,
    OutboxEntry,
    RateBook,
    Run,
    TaskRun,
    TimerDue,
    flow_version,
)
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.ports import Commit, Counts, Etag, Snapshot, check_range, split_uri

T = TypeVar("T")


class MemoryBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, list[Callable[[Envelope], None]]] = defaultdict(list)
        self.published: list[tuple[str, Envelope]] = []
        self.record = False

    def subscribe(self, topic: str, handler: Callable[[Envelope], None]) -> None:
        self._subscribers[topic].append(handler)

    def publish(self, topic: str, event: Envelope) -> None:
        if self.record:
            self.published.append((topic, event))
        for handler in self._subscribers.get(topic, ()):
            handler(event)

    def publish_all(self, topic: str, events: Sequence[Envelope]) -> None:
        for event in events:
            self.publish(topic, event)


class MemoryTimerQueue:
    """TimerQueue in memory: the pushes armed, one per (entry, due time), for a test to deliver
    (on time, twice, early, or never)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.armed: dict[tuple[str, str, datetime], TimerDue] = {}

    def arm(self, entries: Sequence[OutboxEntry]) -> None:
        with self._lock:
            for e in entries:
                due = TimerDue(run_id=e.run_id, entry_id=e.id, due_at=e.due_at)
                self.armed.setdefault((e.run_id, e.id, e.due_at), due)

    def pushes(self) -> list[TimerDue]:
        with self._lock:
            return sorted(self.armed.values(), key=lambda d: (d.due_at, d.run_id, d.entry_id))


class MemoryBlobStore:
    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def put(self, uri: str, data: bytes, content_type: str, *, overwrite: bool = False) -> None:
        with self._lock:
            existing = self._blobs.get(uri)
            if existing is not None and not overwrite:
                if existing[0] != data:
                    raise ConflictError(f"{uri} already exists with different content")
                return
            self._blobs[uri] = (data, content_type)

    def get(self, uri: str) -> bytes:
        return self._data(uri)

    def get_range(self, uri: str, start: int, end: int) -> bytes:
        check_range(start, end)
        return self._data(uri)[start:end]

    def list_uris(self, prefix: str) -> list[str]:
        split_uri(prefix)
        with self._lock:
            return sorted(u for u in self._blobs if u.startswith(prefix))

    def delete(self, uri: str) -> None:
        split_uri(uri)
        with self._lock:
            self._blobs.pop(uri, None)

    def _data(self, uri: str) -> bytes:
        with self._lock:
            found = self._blobs.get(uri)
        if found is None:
            raise NotFoundError(f"no object at {uri}")
        return found[0]


class MemoryStore(DueTasks, BookLimits, BookRates):
    """FlowStore, StateStore, TimerStore, DeadLetterStore, LimitStore and RateStore over dicts,
    one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flows: dict[str, FlowSpec] = {}
        self._latest: dict[str, str] = {}
        self._deployed: dict[str, str] = {}
        self._runs: dict[str, tuple[Run, int]] = {}
        self._tasks: dict[str, dict[str, tuple[TaskRun, int]]] = {}
        self._outbox: dict[str, dict[str, OutboxEntry]] = {}
        self._counters: dict[str, dict[str, dict[str, int]]] = {}
        self._markers: dict[str, set[str]] = {}
        self._timers: list[tuple[datetime, str, str]] = []  # heap of (due, run_id, entry id)
        self._letters: dict[str, DeadLetter] = {}
        self._limits: dict[str, LimitBook] = {}
        self._rates: dict[str, RateBook] = {}

    # LimitStore (the rules: BookLimits)
    def _edit_book(self, key: str, edit: Callable[[LimitBook], tuple[LimitBook, T]]) -> T:
        with self._lock:
            book, out = edit(self._limits.get(key) or LimitBook(key=key))
            self._limits[key] = book
            return out

    def _books(self) -> list[LimitBook]:
        with self._lock:
            return list(self._limits.values())

    # RateStore (the rules: BookRates)
    def _edit_rates(self, key: str, edit: Callable[[RateBook], tuple[RateBook, T]]) -> T:
        with self._lock:
            book, out = edit(self._rates.get(key) or RateBook(key=key))
            self._rates[key] = book
            return out

    def _rate_books(self) -> list[RateBook]:
        with self._lock:
            return list(self._rates.values())

    # FlowStore
    def put_flow(self, spec: FlowSpec, *, deploy: bool = False) -> str:
        version = flow_version(spec)
        with self._lock:
            self._flows.setdefault(version, spec)
            self._latest[spec.name] = version
            if deploy:
                self._deployed[spec.name] = version
        return version

    def deployed(self) -> list[FlowSpec]:
        with self._lock:
            return [self._flows[v] for v in self._deployed.values()]

    def get_flow(self, version: str) -> FlowSpec | None:
        return self._flows.get(version)

    def latest_version(self, flow: str) -> str | None:
        return self._latest.get(flow)

    # StateStore
    def create_run(self, run: Run) -> bool:
        with self._lock:
            if run.run_id in self._runs:
                return False
            self._runs[run.run_id] = (run, 1)
            self._tasks[run.run_id] = {}
            self._outbox[run.run_id] = {}
            self._counters[run.run_id] = {}
            self._markers[run.run_id] = set()
            return True

    def load(self, run_id: str, keys: Sequence[str] | None = None) -> Snapshot | None:
        with self._lock:
            found = self._runs.get(run_id)
            if found is None:
                return None
            tasks = self._tasks[run_id]
            wanted = tasks.keys() if keys is None else [k for k in keys if k in tasks]
            return Snapshot(
                run=found[0],
                run_etag=found[1],
                tasks={k: tasks[k][0] for k in wanted},
                etags={k: tasks[k][1] for k in wanted},
                outbox=tuple(self._outbox[run_id].values()) if keys is None else (),
            )

    def tasks(self, run_id: str, keys: Sequence[str]) -> tuple[dict[str, TaskRun], dict[str, Etag]]:
        with self._lock:
            tasks = self._tasks.get(run_id, {})
            wanted = [k for k in keys if k in tasks]
            return {k: tasks[k][0] for k in wanted}, {k: tasks[k][1] for k in wanted}

    def counters(self, run_id: str, names: Sequence[str]) -> Counts:
        with self._lock:
            mine = self._counters.get(run_id, {})
            return {n: dict(mine.get(n, {})) for n in names}

    def commit(self, commit: Commit) -> Counts:
        with self._lock:
            if commit.run_id not in self._runs:
                raise NotFoundError(f"no run {commit.run_id!r}")
            tasks = self._tasks[commit.run_id]
            if commit.run is not None and self._runs[commit.run_id][1] != commit.run_etag:
                raise ConflictError(f"run {commit.run_id} changed since read")
            for task, etag in commit.tasks:
                current = tasks.get(task.key)
                if (current[1] if current else None) != etag:
                    raise ConflictError(
                        f"task {task.key} of run {commit.run_id} changed since read"
                    )
            markers = self._markers[commit.run_id]
            if markers.intersection(commit.markers):
                raise ConflictError(f"run {commit.run_id}: a marker exists already")
            markers.update(commit.markers)
            if commit.run is not None:
                self._runs[commit.run_id] = (commit.run, self._runs[commit.run_id][1] + 1)
            for task, etag in commit.tasks:
                tasks[task.key] = (task, (etag if isinstance(etag, int) else 0) + 1)
            outbox = self._outbox[commit.run_id]
            for entry in commit.outbox_add:
                outbox[entry.id] = entry
                heapq.heappush(self._timers, (entry.due_at, entry.run_id, entry.id))
            for entry_id in commit.outbox_done:
                outbox.pop(entry_id, None)
            counters = self._counters[commit.run_id]
            out: dict[str, dict[str, int]] = {}
            for name, deltas in commit.increments.items():
                doc = counters.setdefault(name, {})
                for f, delta in deltas.items():
                    doc[f] = doc.get(f, 0) + delta
                out[name] = dict(doc)
            return out

    def list_runs(
        self, flow: str | None = None, limit: int = 50, before: datetime | None = None
    ) -> list[Run]:
        with self._lock:
            runs = [
                r
                for r, _ in self._runs.values()
                if (flow is None or r.flow == flow) and (before is None or r.created_at < before)
            ]
        return sorted(runs, key=lambda r: r.created_at, reverse=True)[:limit]

    # TimerStore
    def due(
        self, now: datetime, limit: int = 100, after: OutboxEntry | None = None
    ) -> list[OutboxEntry]:
        with self._lock:
            self._drop_done_timers()
            cursor = (after.due_at, after.run_id, after.id) if after else None
            found = sorted(
                (
                    e
                    for box in self._outbox.values()
                    for e in box.values()
                    if e.due_at <= now and (cursor is None or (e.due_at, e.run_id, e.id) > cursor)
                ),
                key=lambda e: (e.due_at, e.run_id, e.id),
            )
            return found[:limit]

    def _tasks_due(
        self, field: str, now: datetime, limit: int, after: TaskRun | None
    ) -> list[TaskRun]:
        """As Firestore's query: by `field`, then by document (run, key); after the cursor."""
        cursor = (getattr(after, field), after.run_id, after.key) if after else None
        with self._lock:
            found = [
                ((due, t.run_id, t.key), t)
                for tasks in self._tasks.values()
                for t, _ in tasks.values()
                if (due := getattr(t, field)) is not None
                and due <= now
                and (cursor is None or (due, t.run_id, t.key) > cursor)
            ]
        return [t for _, t in sorted(found, key=lambda pair: pair[0])][:limit]

    def next_due(self) -> datetime | None:
        with self._lock:
            self._drop_done_timers()
            return self._timers[0][0] if self._timers else None

    def entry(self, run_id: str, entry_id: str) -> OutboxEntry | None:
        with self._lock:
            return self._outbox.get(run_id, {}).get(entry_id)

    def _drop_done_timers(self) -> None:
        """Pop heap items whose entry is gone or was re-added with another due time."""
        while self._timers:
            due, run_id, entry_id = self._timers[0]
            entry = self._outbox.get(run_id, {}).get(entry_id)
            if entry is not None and entry.due_at == due:
                return
            heapq.heappop(self._timers)

    # DeadLetterStore
    def record(self, letter: DeadLetter) -> None:
        with self._lock:
            self._letters.pop(letter.id, None)  # keyed by id: a redelivery keeps one record
            self._letters[letter.id] = letter

    def list(self, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            return list(reversed(self._letters.values()))[:limit]

    def get(self, letter_id: str) -> DeadLetter | None:
        with self._lock:
            return self._letters.get(letter_id)
