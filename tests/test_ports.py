"""Port contract tests: one suite, run against every adapter of each port.

In-memory adapters always run; emulator-backed ones are marked `emulator` (skipped with
`--backend memory`). The emulators' data is shared within a session, so every test uses its own
ids, and assertions about global queries (timers, dead letters, run listings) only look at the
records the test wrote.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest
from google.api_core.exceptions import DeadlineExceeded

from contracts import (
    Attempt,
    DeadLetter,
    Envelope,
    ErrorInfo,
    FlowSpec,
    OutboxEntry,
    Run,
    RunRequested,
    RunStatus,
    TaskRequested,
    TaskRun,
    TaskStatus,
    TriggerInfo,
    flow_version,
)
from examples.diamond import diamond
from orchestrator._codec import from_message
from orchestrator._errors import ConflictError, NotFoundError
from orchestrator._memory import MemoryBlobStore, MemoryBus, MemoryStore
from orchestrator._ports import (
    BlobStore,
    Commit,
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
    """MemoryStore and FirestoreStore each implement all four record-keeping ports."""


def _uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def _project() -> str:
    return os.environ["GOOGLE_CLOUD_PROJECT"]


# --------------------------------------------------------------------------------------------
# Adapters under test
# --------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("gcs", marks=EMULATOR)])
def blobs(request: pytest.FixtureRequest) -> Iterator[BlobStore]:
    if request.param == "memory":
        yield MemoryBlobStore()
        return
    request.getfixturevalue("stack_env")
    from orchestrator._gcs import GcsBlobStore

    gcs = GcsBlobStore.from_env(_project())
    yield gcs
    gcs._client.close()


@pytest.fixture(params=["memory", pytest.param("firestore", marks=EMULATOR)])
def store(request: pytest.FixtureRequest) -> Iterator[Stores]:
    if request.param == "memory":
        yield MemoryStore()
        return
    request.getfixturevalue("stack_env")
    from orchestrator._firestore import FirestoreStore

    firestore_store = FirestoreStore.from_env(_project())
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

        from orchestrator._pubsub import PubSubBus

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


def task_etag(store: StateStore, run_id: str, key: str) -> Etag:
    found = store.load_task(run_id, key)
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


# --------------------------------------------------------------------------------------------
# BlobStore
# --------------------------------------------------------------------------------------------

BINARY = bytes(range(256)) + b"\xff\xfe\x00\x80 not utf-8 \xc3\x28"


def _blob_uri(name: str = "result.bin") -> str:
    return f"gs://{BUCKET}/runs/{_uid('run')}/{name}"


@pytest.mark.parametrize(
    "data",
    [BINARY, b"", '{"ü": "✓"}'.encode()],
    ids=["non-utf8", "empty", "utf8"],
)
def test_blob_round_trips_bytes_exactly(blobs: BlobStore, data: bytes) -> None:
    uri = _blob_uri()
    blobs.put(uri, data, "application/octet-stream")
    got = blobs.get(uri)
    assert type(got) is bytes
    assert got == data


@pytest.mark.parametrize("name", ["scale[3].pickle", "a b/ü ñ.json", "group/scale[12]/x.json"])
def test_blob_object_names_with_brackets_spaces_and_unicode(blobs: BlobStore, name: str) -> None:
    uri = _blob_uri(name)
    blobs.put(uri, BINARY, "application/octet-stream")
    assert blobs.get(uri) == BINARY


def test_blob_put_same_bytes_again_is_a_noop(blobs: BlobStore) -> None:
    uri = _blob_uri()
    blobs.put(uri, BINARY, "application/octet-stream")
    blobs.put(uri, BINARY, "application/octet-stream")
    assert blobs.get(uri) == BINARY


def test_blob_put_different_bytes_conflicts_and_keeps_the_first(blobs: BlobStore) -> None:
    uri = _blob_uri()
    blobs.put(uri, b"first", "text/plain")
    with pytest.raises(ConflictError):
        blobs.put(uri, b"second", "text/plain")
    assert blobs.get(uri) == b"first"


def test_blob_overwrite_replaces(blobs: BlobStore) -> None:
    uri = _blob_uri()
    blobs.put(uri, b"first", "text/plain", overwrite=True)  # overwrite of nothing creates
    assert blobs.get(uri) == b"first"
    blobs.put(uri, BINARY, "application/octet-stream", overwrite=True)
    assert blobs.get(uri) == BINARY
    blobs.put(uri, BINARY, "application/octet-stream")  # write-once again: same bytes, no-op
    with pytest.raises(ConflictError):
        blobs.put(uri, b"first", "text/plain")


def test_blob_get_missing_is_not_found(blobs: BlobStore) -> None:
    with pytest.raises(NotFoundError):
        blobs.get(_blob_uri())
    with pytest.raises(NotFoundError):
        blobs.get(f"gs://{_uid('no-bucket')}/x.json")


# --------------------------------------------------------------------------------------------
# FlowStore
# --------------------------------------------------------------------------------------------


def test_flow_put_twice_returns_the_same_version(store: Stores) -> None:
    spec = spec_named(_uid("flow"))
    version = store.put_flow(spec)
    assert version == flow_version(spec)
    assert store.put_flow(spec) == version


def test_flow_get_round_trips_the_spec(store: Stores) -> None:
    spec = spec_named(_uid("flow"))
    version = store.put_flow(spec)
    got = store.get_flow(version)
    assert got == spec
    assert got is not None
    assert flow_version(got) == version
    assert store.get_flow("0" * 20) is None


def test_flow_latest_version_follows_the_newest_registration(store: Stores) -> None:
    name = _uid("flow")
    first, second = spec_named(name), spec_named(name, entrypoint="diamond_v2")
    assert store.latest_version(name) is None
    v1 = store.put_flow(first)
    assert store.latest_version(name) == v1
    v2 = store.put_flow(second)
    assert v2 != v1
    assert store.latest_version(name) == v2
    assert store.get_flow(v1) == first  # older versions stay readable
    assert store.put_flow(first) == v1  # re-registering the old one makes it the latest again
    assert store.latest_version(name) == v1
    assert store.latest_version(_uid("unknown")) is None


# --------------------------------------------------------------------------------------------
# StateStore: runs
# --------------------------------------------------------------------------------------------


def test_create_run_is_create_only(store: Stores) -> None:
    run = make_run()
    assert store.create_run(run) is True
    duplicate = run.model_copy(update={"params": {"other": True}, "status": RunStatus.RUNNING})
    assert store.create_run(duplicate) is False
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.run == run  # the duplicate did not overwrite


def test_load_unknown_run_is_none(store: Stores) -> None:
    assert store.load(_uid("missing")) is None


def test_load_returns_the_run_with_nested_json_intact(store: Stores) -> None:
    params: dict[str, Any] = {
        "m": [[1, 2], [3]],
        "deep": {"x": [[[]], [{"y": [[1.5, None, "s", True]]}]]},
        "empty": [],
        "text": "ü✓",
    }
    run = created(store, make_run(params=params))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.run == run
    assert snap.run.params["m"] == [[1, 2], [3]]
    assert snap.run.trigger == run.trigger
    assert snap.tasks == {}
    assert snap.etags == {}
    assert snap.outbox == ()


def test_run_update_with_etag(store: Stores) -> None:
    run = created(store)
    snap = store.load(run.run_id)
    assert snap is not None
    running = run.model_copy(
        update={"status": RunStatus.RUNNING, "started_at": _now(), "params": {"m": [[9], []]}}
    )
    store.commit(Commit(run_id=run.run_id, run=running, run_etag=snap.run_etag))
    after = store.load(run.run_id)
    assert after is not None
    assert after.run == running
    failed = running.model_copy(update={"status": RunStatus.FAILED})
    with pytest.raises(ConflictError):  # the etag read before the update is stale now
        store.commit(Commit(run_id=run.run_id, run=failed, run_etag=snap.run_etag))
    again = store.load(run.run_id)
    assert again is not None
    assert again.run == running
    store.commit(Commit(run_id=run.run_id, run=failed, run_etag=after.run_etag))
    final = store.load(run.run_id)
    assert final is not None
    assert final.run.status is RunStatus.FAILED


def test_run_update_without_etag_conflicts(store: Stores) -> None:
    """A run write is conditional like every record in a Commit: no etag, no blind overwrite."""
    run = created(store)
    cancelled = run.model_copy(update={"status": RunStatus.CANCELLED})
    with pytest.raises(ConflictError):
        store.commit(Commit(run_id=run.run_id, run=cancelled, run_etag=None))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.run == run


# --------------------------------------------------------------------------------------------
# StateStore: tasks and commits
# --------------------------------------------------------------------------------------------


def test_task_create_twice_conflicts(store: Stores) -> None:
    run = created(store)
    task = make_task(run.run_id, "a")
    store.commit(Commit(run_id=run.run_id, tasks=[(task, None)]))
    with pytest.raises(ConflictError):
        store.commit(Commit(run_id=run.run_id, tasks=[(advanced(task, TaskStatus.RUNNING), None)]))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.tasks == {"a": task}
    assert set(snap.etags) == {"a"}


def test_task_update_with_fresh_etag_then_stale_etag(store: Stores) -> None:
    run = created(store)
    task = make_task(run.run_id, "a")
    store.commit(Commit(run_id=run.run_id, tasks=[(task, None)]))
    first_etag = task_etag(store, run.run_id, "a")
    running = advanced(task, TaskStatus.RUNNING)
    store.commit(Commit(run_id=run.run_id, tasks=[(running, first_etag)]))
    found = store.load_task(run.run_id, "a")
    assert found is not None
    assert found[1] == running
    with pytest.raises(ConflictError):
        store.commit(
            Commit(run_id=run.run_id, tasks=[(advanced(task, TaskStatus.FAILED), first_etag)])
        )
    assert store.load_task(run.run_id, "a") == found
    succeeded = advanced(running, TaskStatus.SUCCEEDED)
    store.commit(Commit(run_id=run.run_id, tasks=[(succeeded, found[2])]))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.tasks["a"] == succeeded


def test_task_update_of_a_missing_task_conflicts(store: Stores) -> None:
    run = created(store)
    store.commit(Commit(run_id=run.run_id, tasks=[(make_task(run.run_id, "a"), None)]))
    etag_of_a = task_etag(store, run.run_id, "a")
    with pytest.raises(ConflictError):
        store.commit(Commit(run_id=run.run_id, tasks=[(make_task(run.run_id, "b"), etag_of_a)]))
    found = store.load_task(run.run_id, "b")
    assert found is not None
    assert found[1:] == (None, None)


def test_failed_commit_writes_nothing(store: Stores) -> None:
    run = created(store)
    task_a = make_task(run.run_id, "a")
    store.commit(Commit(run_id=run.run_id, tasks=[(task_a, None)]))
    stale = task_etag(store, run.run_id, "a")
    store.commit(Commit(run_id=run.run_id, tasks=[(advanced(task_a, TaskStatus.RUNNING), stale)]))
    before = store.load(run.run_id)
    assert before is not None

    batch = Commit(
        run_id=run.run_id,
        run=run.model_copy(update={"status": RunStatus.RUNNING}),
        run_etag=before.run_etag,  # fresh: valid on its own
        tasks=[
            (make_task(run.run_id, "b"), None),  # valid on its own
            (advanced(task_a, TaskStatus.FAILED), stale),  # fails the batch
            (make_task(run.run_id, "c"), None),  # valid on its own
        ],
        outbox_add=[outbox_entry(run.run_id, "dispatch-b-1", ERA_NEVER, key="b")],
    )
    with pytest.raises(ConflictError):
        store.commit(batch)

    after = store.load(run.run_id)
    assert after is not None
    assert after.run == before.run
    assert after.tasks == before.tasks
    assert set(after.tasks) == {"a"}
    assert after.outbox == ()
    assert all(e.run_id != run.run_id for e in store.due(ERA_NEVER, limit=10_000))
    assert store.load_task(run.run_id, "b") == (run, None, None)
    # The failed batch left the fresh run etag valid: the same writes without the stale one land.
    store.commit(
        Commit(
            run_id=run.run_id,
            run=batch.run,
            run_etag=before.run_etag,
            tasks=[batch.tasks[0], batch.tasks[2]],
        )
    )
    landed = store.load(run.run_id)
    assert landed is not None
    assert set(landed.tasks) == {"a", "b", "c"}
    assert landed.run.status is RunStatus.RUNNING


def test_failed_commit_on_stale_run_etag_writes_no_tasks(store: Stores) -> None:
    run = created(store)
    snap = store.load(run.run_id)
    assert snap is not None
    store.commit(
        Commit(
            run_id=run.run_id,
            run=run.model_copy(update={"status": RunStatus.RUNNING}),
            run_etag=snap.run_etag,
        )
    )
    with pytest.raises(ConflictError):
        store.commit(
            Commit(
                run_id=run.run_id,
                run=run.model_copy(update={"status": RunStatus.CANCELLED}),
                run_etag=snap.run_etag,  # stale
                tasks=[(make_task(run.run_id, "a"), None)],
            )
        )
    after = store.load(run.run_id)
    assert after is not None
    assert after.run.status is RunStatus.RUNNING
    assert after.tasks == {}


def test_load_task(store: Stores) -> None:
    run = created(store)
    task = make_task(run.run_id, "a")
    assert store.load_task(run.run_id, "a") == (run, None, None)
    store.commit(Commit(run_id=run.run_id, tasks=[(task, None)]))
    found = store.load_task(run.run_id, "a")
    assert found is not None
    got_run, got_task, etag = found
    assert got_run == run
    assert got_task == task
    assert etag is not None
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.etags["a"] == etag  # load and load_task hand out the same token
    assert store.load_task(run.run_id, "unknown") == (run, None, None)
    assert store.load_task(_uid("missing"), "a") is None


@pytest.mark.parametrize(
    "key",
    ["scale[3]", "group/scale[12]", "a/b[0]/c", "__reserved__", "..", "ünï cødé", "x" * 1100],
    ids=["brackets", "slash", "slashes-brackets", "dunder", "dotdot", "unicode", "long"],
)
def test_task_keys_with_slashes_and_brackets(store: Stores, key: str) -> None:
    run = created(store)
    task = make_task(run.run_id, key)
    other = make_task(run.run_id, key + "x")  # must not collide with `key`
    store.commit(Commit(run_id=run.run_id, tasks=[(task, None), (other, None)]))
    found = store.load_task(run.run_id, key)
    assert found is not None
    assert found[1] == task
    running = advanced(task, TaskStatus.RUNNING)
    store.commit(Commit(run_id=run.run_id, tasks=[(running, found[2])]))
    with pytest.raises(ConflictError):
        store.commit(Commit(run_id=run.run_id, tasks=[(task, None)]))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.tasks == {key: running, key + "x": other}
    assert set(snap.etags) == {key, key + "x"}
    entry = outbox_entry(run.run_id, f"dispatch-{key}-1", ERA_KEYS, key=key)
    store.commit(Commit(run_id=run.run_id, outbox_add=[entry]))
    with_entry = store.load(run.run_id)
    assert with_entry is not None
    assert with_entry.outbox == (entry,)
    store.commit(Commit(run_id=run.run_id, outbox_done=[entry.id]))
    without = store.load(run.run_id)
    assert without is not None
    assert without.outbox == ()


def test_list_runs_filters_by_flow_newest_first_with_limit(store: Stores) -> None:
    flow, other_flow = _uid("flow"), _uid("flow")
    t0 = _now()
    oldest = make_run(flow=flow, created_at=t0)
    middle = make_run(flow=flow, created_at=t0 + timedelta(seconds=1))
    newest = make_run(flow=flow, created_at=t0 + timedelta(seconds=2))
    elsewhere = make_run(flow=other_flow, created_at=t0 + timedelta(seconds=3))
    for run in (middle, oldest, elsewhere, newest):
        created(store, run)
    assert store.list_runs(flow=flow) == [newest, middle, oldest]
    assert store.list_runs(flow=flow, limit=2) == [newest, middle]
    assert store.list_runs(flow=other_flow) == [elsewhere]
    assert store.list_runs(flow=_uid("unknown")) == []
    everything = store.list_runs(limit=10_000)
    ours = [r for r in everything if r.flow in (flow, other_flow)]
    assert ours == [elsewhere, newest, middle, oldest]
    stamps = [r.created_at for r in everything]
    assert stamps == sorted(stamps, reverse=True)
    assert len(store.list_runs(limit=1)) == 1


# --------------------------------------------------------------------------------------------
# Outbox and TimerStore
# --------------------------------------------------------------------------------------------


def test_outbox_entries_are_due_when_their_time_has_come(store: Stores) -> None:
    run = created(store)
    now = ERA_DUE
    past = outbox_entry(run.run_id, "dispatch-a-1", now - timedelta(seconds=10), key="a")
    exact = outbox_entry(run.run_id, "finish", now)
    future = outbox_entry(run.run_id, "wake-1", now + timedelta(hours=1))
    store.commit(Commit(run_id=run.run_id, outbox_add=[future, exact, past]))

    snap = store.load(run.run_id)
    assert snap is not None
    assert sorted(snap.outbox, key=lambda e: e.id) == sorted(
        [past, exact, future], key=lambda e: e.id
    )
    due = [e for e in store.due(now, limit=10_000) if e.run_id == run.run_id]
    assert due == [past, exact]  # due_at <= now, earliest first
    later = [e for e in store.due(now + timedelta(hours=2), limit=10_000) if e.run_id == run.run_id]
    assert later == [past, exact, future]

    store.commit(Commit(run_id=run.run_id, outbox_done=[past.id, exact.id]))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.outbox == (future,)
    assert [e for e in store.due(now, limit=10_000) if e.run_id == run.run_id] == []
    store.commit(Commit(run_id=run.run_id, outbox_done=[future.id, "never-added"]))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.outbox == ()


def test_next_due_is_the_earliest_pending_entry(store: Stores) -> None:
    run_a, run_b = created(store), created(store)
    second = outbox_entry(run_a.run_id, "wake-2", ERA_NEXT_DUE + timedelta(seconds=2))
    first = outbox_entry(run_b.run_id, "wake-1", ERA_NEXT_DUE + timedelta(seconds=1))
    third = outbox_entry(run_a.run_id, "wake-3", ERA_NEXT_DUE + timedelta(seconds=3))
    store.commit(Commit(run_id=run_a.run_id, outbox_add=[second, third]))
    store.commit(Commit(run_id=run_b.run_id, outbox_add=[first]))
    try:
        assert store.next_due() == first.due_at
        assert store.due(ERA_NEXT_DUE + timedelta(seconds=10), limit=2) == [first, second]
        assert store.due(first.due_at) == [first]
        assert store.due(first.due_at - timedelta(microseconds=1)) == []

        store.commit(Commit(run_id=run_b.run_id, outbox_done=[first.id]))
        assert store.next_due() == second.due_at
        store.commit(Commit(run_id=run_a.run_id, outbox_done=[second.id]))
        assert store.next_due() == third.due_at
    finally:
        store.commit(Commit(run_id=run_a.run_id, outbox_done=[second.id, third.id]))
        store.commit(Commit(run_id=run_b.run_id, outbox_done=[first.id]))
    after = store.next_due()
    assert after is None or after > third.due_at


def test_outbox_add_with_an_existing_id_replaces_the_entry(store: Stores) -> None:
    run = created(store)
    early = outbox_entry(run.run_id, "dispatch-a-2", ERA_REPLACE + timedelta(seconds=1))
    late = early.model_copy(update={"due_at": ERA_REPLACE + timedelta(seconds=5)})
    store.commit(Commit(run_id=run.run_id, outbox_add=[early]))
    try:
        store.commit(Commit(run_id=run.run_id, outbox_add=[late]))
        snap = store.load(run.run_id)
        assert snap is not None
        assert snap.outbox == (late,)
        assert store.due(ERA_REPLACE + timedelta(seconds=2)) == []
        assert store.next_due() == late.due_at
    finally:
        store.commit(Commit(run_id=run.run_id, outbox_done=[early.id]))


# --------------------------------------------------------------------------------------------
# DeadLetterStore
# --------------------------------------------------------------------------------------------


def _letter(letter_id: str, received_at: datetime, reason: str = "bad input") -> DeadLetter:
    return DeadLetter(
        id=letter_id,
        received_at=received_at,
        source="tasks",
        reason=reason,
        event_type="dev.kumoflow.task.requested",
        event_id=letter_id,
        payload='{"not": "valid"} \u00fc',
    )


def test_dead_letters_list_newest_first(store: Stores) -> None:
    t0 = _now()
    older = _letter(_uid("dl"), t0)
    newer = _letter(_uid("pubsub/dl"), t0 + timedelta(seconds=1))  # '/' in the id
    store.record(older)
    store.record(newer)
    ours = [d for d in store.list(limit=10_000) if d.id in (older.id, newer.id)]
    assert ours == [newer, older]
    assert len(store.list(limit=1)) == 1


def test_dead_letter_recorded_twice_is_kept_once(store: Stores) -> None:
    letter = _letter(_uid("dl"), _now())
    store.record(letter)
    store.record(letter)  # a redelivery of the same rejected event
    ours = [d for d in store.list(limit=10_000) if d.id == letter.id]
    assert ours == [letter]


# --------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------


def test_concurrent_commits_of_distinct_tasks_all_succeed(store: Stores) -> None:
    run = created(store)
    tasks = [make_task(run.run_id, f"scale[{i}]") for i in range(20)]

    outcomes = in_threads(
        len(tasks), lambda i: store.commit(Commit(run_id=run.run_id, tasks=[(tasks[i], None)]))
    )

    assert outcomes == [None] * len(tasks)
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.tasks == {t.key: t for t in tasks}


def test_racing_creates_of_one_task_exactly_one_wins(store: Stores) -> None:
    run = created(store)
    contenders = [make_task(run.run_id, "join", worker=f"worker-{i}") for i in range(10)]

    outcomes = in_threads(
        len(contenders),
        lambda i: store.commit(Commit(run_id=run.run_id, tasks=[(contenders[i], None)])),
    )

    winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, ConflictError) for o in outcomes if o is not None), outcomes
    found = store.load_task(run.run_id, "join")
    assert found is not None
    assert found[1] == contenders[winners[0]]


# --------------------------------------------------------------------------------------------
# EventBus
# --------------------------------------------------------------------------------------------


def _envelopes(run_id: str) -> list[Envelope]:
    now = _now()
    return [
        Envelope(
            id=f"{run_id}/scale[3]/1",
            type="dev.kumoflow.task.requested",
            source="//kumoflow/orchestrator",
            time=now,
            subject="scale[3]",
            data=TaskRequested(
                run_id=run_id, flow_version="0123456789abcdef0123", key="scale[3]", attempt=1
            ),
        ),
        Envelope(
            id=_uid("evt"),
            type="dev.kumoflow.run.requested",
            source="//kumoflow/cli",
            time=now + timedelta(microseconds=1),
            data=RunRequested(
                flow="diamond",
                params={"m": [[1, 2], [3]], "s": "ü✓"},
                run_id=run_id,
                trigger=TriggerInfo(kind="api", detail={"grid": [[1], []]}),
            ),
        ),
    ]


def test_bus_delivers_published_events_unchanged(bus_probe: BusProbe) -> None:
    topic, other_topic = bus_probe.new_topic(), bus_probe.new_topic()
    events = _envelopes(_uid("run"))
    for event in events:
        bus_probe.bus.publish(topic, event)

    got = [event for event, _ in bus_probe.received(topic, len(events))]

    assert sorted(got, key=lambda e: e.id) == sorted(events, key=lambda e: e.id)
    by_id = {e.id: e for e in got}
    assert by_id[events[0].id].data == events[0].data
    requested = by_id[events[1].id].data
    assert isinstance(requested, RunRequested)
    assert requested.params["m"] == [[1, 2], [3]]
    assert by_id[events[0].id].time == events[0].time
    if isinstance(bus_probe, MemoryBusProbe):  # a pull with nothing to get waits a deadline
        assert bus_probe.received(other_topic, 1) == []


@EMULATOR
def test_pubsub_carries_binary_mode_cloudevents(pubsub_probe: PubSubProbe) -> None:
    topic = pubsub_probe.new_topic()
    event = _envelopes(_uid("run"))[0]
    pubsub_probe.bus.publish(topic, event)

    ((got, attributes),) = pubsub_probe.received(topic, 1)

    assert got == event
    assert attributes is not None
    assert attributes["ce-type"] == "dev.kumoflow.task.requested"
    assert attributes["ce-id"] == event.id
    assert attributes["ce-source"] == event.source
    assert attributes["ce-specversion"] == "1.0"
    assert attributes["ce-subject"] == "scale[3]"
    assert datetime.fromisoformat(attributes["ce-time"]) == event.time
    assert attributes["content-type"] == "application/json"
    assert all(k.startswith("ce-") or k == "content-type" for k in attributes)


ERA_LEASES = datetime(2980, 1, 1, tzinfo=UTC)  # far ahead: the stack's sweeper never sees them


def test_expired_leases_find_running_attempts_whose_claim_ran_out(store: Stores) -> None:
    run = make_run()
    assert store.create_run(run)
    expired = make_task(run.run_id, "a").model_copy(
        update={"status": TaskStatus.RUNNING, "lease_until": ERA_LEASES}
    )
    alive = make_task(run.run_id, "b").model_copy(
        update={"status": TaskStatus.RUNNING, "lease_until": ERA_LEASES + timedelta(hours=1)}
    )
    queued = make_task(run.run_id, "c")
    store.commit(Commit(run_id=run.run_id, tasks=[(expired, None), (alive, None), (queued, None)]))
    found = [
        t for t in store.expired_leases(ERA_LEASES + timedelta(minutes=1)) if t.run_id == run.run_id
    ]
    assert [t.key for t in found] == ["a"]
    _, task, etag = store.load_task(run.run_id, "a") or (None, None, None)
    assert task is not None
    done = task.model_copy(update={"status": TaskStatus.SUCCEEDED, "lease_until": None})
    store.commit(Commit(run_id=run.run_id, tasks=[(done, etag)]))
    assert [
        t for t in store.expired_leases(ERA_LEASES + timedelta(minutes=1)) if t.run_id == run.run_id
    ] == []
