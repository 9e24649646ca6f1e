"""Port contract tests, shared part: the adapters under test, probes and record factories.

Every port's suite runs against each adapter of that port. In-memory adapters always run;
emulator-backed ones are marked `emulator` (skipped with `--backend memory`). The emulators' data
is shared within a session, so every test uses its own ids, and assertions about global queries
(timers, dead letters, run listings) only look at the records the test wrote.

Test modules import the fixtures they use from here by name.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from google.api_core.exceptions import DeadlineExceeded

from examples.diamond import diamond
from orchestrator.adapters import (
    FileBlobStore,
    MemoryBlobStore,
    MemoryBus,
    MemoryStore,
    SqliteStore,
    from_message,
)
from orchestrator.contracts import (
    Attempt,
    Envelope,
    ErrorInfo,
    FlowSpec,
    OutboxEntry,
    Run,
    TaskRun,
    TaskStatus,
    TriggerInfo,
)
from orchestrator.ports import (
    BlobStore,
    DeadLetterStore,
    Etag,
    EventBus,
    FlowStore,
    StateStore,
    TimerStore,
)

EMULATOR = pytest.mark.emulator
BUCKET = "kumoflow-contract-tests"
PULL_DEADLINE_S = 10.0


class Stores(FlowStore, StateStore, TimerStore, DeadLetterStore, Protocol):
    """MemoryStore, SqliteStore and FirestoreStore each implement all four record-keeping
    ports."""


def _uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def _project() -> str:
    return os.environ["GOOGLE_CLOUD_PROJECT"]


# --------------------------------------------------------------------------------------------
# Adapters under test
# --------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "files", pytest.param("gcs", marks=EMULATOR)])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "memory":
        yield MemoryBlobStore()
        return
    if request.param == "files":
        yield FileBlobStore(tmp_path / "blobs")
        return
    request.getfixturevalue("stack_env")
    from orchestrator.adapters import GcsBlobStore

    gcs = GcsBlobStore.from_env(_project())
    yield gcs
    gcs._client.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("firestore", marks=EMULATOR)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        sqlite_store = SqliteStore(tmp_path / "runs.db")  # a fresh database per test
        yield sqlite_store
        sqlite_store.close()
        return
    request.getfixturevalue("stack_env")
    from orchestrator.adapters import FirestoreStore

    # A project of its own on the emulator: timer queries (`due`, `next_due`) span every run of
    # a project, and the e2e runs and the stack's sweeper leave and fire timers in the stack's.
    firestore_store = FirestoreStore.from_env(f"{_project()}-adapters")
    yield firestore_store
    firestore_store._db.close()  # type: ignore[no-untyped-call]


class BusProbe(Protocol):
    """An EventBus plus a way to see what reached a topic's subscribers."""

    bus: EventBus

    def new_topic(self) -> str: ...
    def received(self, topic: str, count: int) -> list[tuple[Envelope, dict[str, str] | None]]:
        """The first `count` events delivered on `topic` (with wire attributes, if any)."""
        ...


class MemoryBusProbe:
    def __init__(self) -> None:
        self.memory_bus = MemoryBus()
        self.bus: EventBus = self.memory_bus
        self._got: dict[str, list[Envelope]] = {}

    def new_topic(self) -> str:
        topic = _uid("topic")
        got = self._got.setdefault(topic, [])
        self.memory_bus.subscribe(topic, got.append)
        return topic

    def received(self, topic: str, count: int) -> list[tuple[Envelope, dict[str, str] | None]]:
        return [(event, None) for event in self._got[topic][:count]]


class PubSubProbe:
    """A fresh topic and pull subscription per call: the emulator loses messages on reused names."""

    def __init__(self, project: str) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        from orchestrator.adapters import PubSubBus

        self.pubsub_bus = PubSubBus.from_env(project)
        self.bus: EventBus = self.pubsub_bus
        self._project = project
        self._admin = pubsub_v1.PublisherClient()
        self._subscriber = pubsub_v1.SubscriberClient()
        self._subscriptions: dict[str, str] = {}

    def new_topic(self) -> str:
        topic = _uid("topic")
        topic_path = self._admin.topic_path(self._project, topic)
        sub_path = self._subscriber.subscription_path(self._project, _uid("sub"))
        self._admin.create_topic(name=topic_path)
        self._subscriber.create_subscription(name=sub_path, topic=topic_path)
        self._subscriptions[topic] = sub_path
        return topic

    def received(self, topic: str, count: int) -> list[tuple[Envelope, dict[str, str] | None]]:
        sub_path = self._subscriptions[topic]
        out: list[tuple[Envelope, dict[str, str] | None]] = []
        deadline = time.monotonic() + PULL_DEADLINE_S
        while len(out) < count and time.monotonic() < deadline:
            try:
                response = self._subscriber.pull(
                    request={"subscription": sub_path, "max_messages": count - len(out)},
                    timeout=max(0.5, deadline - time.monotonic()),
                )
            except DeadlineExceeded:
                continue
            ack_ids = []
            for received in response.received_messages:
                attributes = dict(received.message.attributes)
                out.append((from_message(received.message.data, attributes), attributes))
                ack_ids.append(received.ack_id)
            if ack_ids:
                self._subscriber.acknowledge(request={"subscription": sub_path, "ack_ids": ack_ids})
        return out

    def close(self) -> None:
        for topic, sub_path in self._subscriptions.items():
            self._subscriber.delete_subscription(subscription=sub_path)
            self._admin.delete_topic(topic=self._admin.topic_path(self._project, topic))
        self._subscriber.close()
        self._admin.stop()
        self._admin.transport.close()
        self.pubsub_bus._publisher.stop()
        self.pubsub_bus._publisher.transport.close()


@pytest.fixture
def pubsub_probe(stack_env: dict[str, str]) -> Iterator[PubSubProbe]:
    probe = PubSubProbe(_project())
    yield probe
    probe.close()


@pytest.fixture(params=["memory", pytest.param("pubsub", marks=EMULATOR)])
def bus_probe(request: pytest.FixtureRequest) -> BusProbe:
    if request.param == "memory":
        return MemoryBusProbe()
    probe: PubSubProbe = request.getfixturevalue("pubsub_probe")
    return probe


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


# The emulator stack runs the sweeper function, which fires every outbox entry due by the wall
# clock. Outbox entries in these tests are dated centuries ahead (an era per test) and `due()` is
# asked with an explicit `now`, so the sweeper never touches them. Tests remove what they add, so
# that `next_due()`, a global query, sees the earliest era's entries first.
ERA_NEXT_DUE = datetime(2900, 1, 1, tzinfo=UTC)
ERA_REPLACE = datetime(2901, 1, 1, tzinfo=UTC)
ERA_DUE = datetime(2950, 1, 1, tzinfo=UTC)
ERA_KEYS = datetime(2960, 1, 1, tzinfo=UTC)
ERA_NEVER = datetime(2970, 1, 1, tzinfo=UTC)
ERA_PAGES = datetime(2980, 1, 1, tzinfo=UTC)


def make_run(
    run_id: str | None = None,
    *,
    flow: str = "contract-flow",
    created_at: datetime | None = None,
    params: dict[str, Any] | None = None,
) -> Run:
    return Run(
        run_id=run_id or _uid("run"),
        flow=flow,
        flow_version="0123456789abcdef0123",
        params={"m": [[1, 2], [3]], "n": 1} if params is None else params,
        created_at=created_at or _now(),
        trigger=TriggerInfo(
            kind="pubsub",
            source="projects/p/topics/t",
            event_id="evt-1",
            detail={"grid": [[1, [2, []]], [{"a": [[None]]}]], "s": "ü"},
        ),
    )


def make_task(run_id: str, key: str, *, worker: str | None = None) -> TaskRun:
    now = _now()
    return TaskRun(
        run_id=run_id,
        key=key,
        node=key.split("[", maxsplit=1)[0],
        name="scale",
        map_index=3 if key.endswith("[3]") else None,
        status=TaskStatus.QUEUED,
        attempts=(Attempt(number=1, status=TaskStatus.QUEUED, queued_at=now, worker=worker),),
    )


def advanced(task: TaskRun, status: TaskStatus) -> TaskRun:
    """The task's next state, as the engine would write it."""
    now = _now()
    attempt = task.attempts[-1].model_copy(
        update={
            "status": status,
            "started_at": now,
            "worker": "worker-1",
            "lease_until": now + timedelta(seconds=60),
            "error": ErrorInfo(type="builtins.ValueError", message="boom", traceback="tb\n"),
        }
    )
    return task.model_copy(update={"status": status, "attempts": (*task.attempts[:-1], attempt)})


def outbox_entry(run_id: str, entry_id: str, due_at: datetime, key: str = "a") -> OutboxEntry:
    return OutboxEntry(
        id=entry_id, run_id=run_id, kind="dispatch", due_at=due_at, key=key, attempt=1
    )


def created(store: StateStore, run: Run | None = None) -> Run:
    run = run or make_run()
    assert store.create_run(run) is True
    return run


def load_task(
    store: StateStore, run_id: str, key: str
) -> tuple[Run, TaskRun | None, Etag | None] | None:
    """One task through `load(run_id, [key])`: the run, the record (or None) and its etag."""
    snap = store.load(run_id, [key])
    if snap is None:
        return None
    assert set(snap.tasks) <= {key}
    assert snap.outbox == ()  # a keyed load reads no outbox
    return snap.run, snap.tasks.get(key), snap.etags.get(key)


def task_etag(store: StateStore, run_id: str, key: str) -> Etag:
    found = load_task(store, run_id, key)
    assert found is not None
    _, task, etag = found
    assert task is not None
    assert etag is not None
    return etag


def spec_named(name: str, entrypoint: str | None = None) -> FlowSpec:
    spec = diamond.spec
    update: dict[str, Any] = {"options": spec.options.model_copy(update={"name": name})}
    if entrypoint is not None:
        update["entrypoint"] = entrypoint
    return FlowSpec.model_validate(spec.model_copy(update=update).model_dump())


def in_threads(n: int, work: Callable[[int], None]) -> list[BaseException | None]:
    """Run `work(i)` for i in range(n), all released at once; each thread's exception or None."""
    barrier = threading.Barrier(n)
    outcomes: list[BaseException | None] = [None] * n

    def target(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as e:
            outcomes[i] = e

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a committing thread hung"
    return outcomes
