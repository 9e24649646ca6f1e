"""Every event costs O(its task's degree), never O(the run): counted on the store, at two widths.

A counting wrapper records what each event reads and writes. A map of N leaves with a fan-in
is run at N=40 and N=320; the reads and writes of a leaf's completion must not grow with N,
and no completion may load the whole run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from statistics import median
from typing import Any

from orchestrator import flow, task
from orchestrator.adapters import MemoryBus, MemoryStore, VirtualClock
from orchestrator.contracts import (
    Envelope,
    RunRequested,
    RunStatus,
    TaskFailed,
    TaskRequested,
    TaskRun,
    TaskSucceeded,
)
from orchestrator.ports import Commit, Counts, Etag, Snapshot
from orchestrator.runtime import Runtime, advance, memory_runtime, run_task, start_run


@task(name="leaf")
def leaf(x: int) -> int:
    return x + 1


@task(name="fan-in")
def fan_in(values: list[int]) -> int:
    return sum(values)


@flow(name="map-fan-in")
def map_fan_in(items: list[int]) -> int:
    return fan_in(leaf.map(items))


@flow(name="map-only")
def map_only(items: list[int]) -> list[int]:
    return leaf.map(items)  # 250 leaves: the run's own counter is sharded


class CountingStore(MemoryStore):
    """Counts task documents read and written, and whole-run loads."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def load(self, run_id: str, keys: Sequence[str] | None = None) -> Snapshot | None:
        snap = super().load(run_id, keys)
        if keys is None:
            self.ops["whole-run loads"] += 1
        self.ops["reads"] += 1 + (len(snap.tasks) if snap else 0)
        return snap

    def tasks(self, run_id: str, keys: Sequence[str]) -> tuple[dict[str, TaskRun], dict[str, Etag]]:
        self.ops["reads"] += len(keys)
        return super().tasks(run_id, keys)

    def counters(self, run_id: str, names: Sequence[str]) -> Counts:
        self.ops["reads"] += len(names)
        return super().counters(run_id, names)

    def commit(self, commit: Commit) -> Counts:
        self.ops["writes"] += (
            len(commit.tasks)
            + len(commit.increments)
            + len(commit.outbox_add)
            + len(commit.outbox_done)
            + (commit.run is not None)
        )
        return super().commit(commit)


def _started(store: CountingStore, f: Any, items: list[int]) -> tuple[Runtime, MemoryBus]:
    bus = MemoryBus()
    bus.record = True
    rt = memory_runtime(clock=VirtualClock(), functions=f.functions(), store=store, bus=bus)
    store.put_flow(f.spec)
    start_run(rt, RunRequested(flow=f.spec.name, params={"items": items}), run_id="r")
    return rt, bus


def _deliver_all(
    rt: Runtime, bus: MemoryBus, complete: Callable[[TaskSucceeded | TaskFailed], None]
) -> int:
    """Hand every published message to its handler, in order, until none is left; returns how
    many run-finished events were published."""
    done = finishes = 0
    while done < len(bus.published):
        topic, envelope = bus.published[done]
        done += 1
        data: Any = envelope.data
        if isinstance(data, TaskRequested):
            run_task(rt, data)
        elif isinstance(data, TaskSucceeded | TaskFailed):
            complete(data)
        elif topic == rt.topics.finished:
            finishes += 1
    return finishes


def _run(width: int) -> tuple[list[Counter[str]], CountingStore, Runtime]:
    store = CountingStore()
    rt, bus = _started(store, map_fan_in, list(range(width)))
    per_leaf_event: list[Counter[str]] = []

    def complete(event: TaskSucceeded | TaskFailed) -> None:
        before = Counter(store.ops)
        advance(rt, "r", event)
        if event.key.startswith("leaf["):
            per_leaf_event.append(Counter(store.ops) - before)

    assert _deliver_all(rt, bus, complete) == 1
    return per_leaf_event, store, rt


def test_a_completion_costs_the_same_at_40_and_320_wide() -> None:
    narrow, narrow_store, _ = _run(40)
    wide, wide_store, rt = _run(320)
    assert narrow_store.ops["whole-run loads"] == wide_store.ops["whole-run loads"] == 0
    snap = wide_store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    plan = rt.plan(snap.run.flow_version, snap.run.params)
    assert rt.blobs.get(rt.flow_result_uri(plan, "r")) == str(sum(range(1, 321))).encode()
    # All leaf completions but the last cost the same, whatever the width: the task record
    # only: the instance read the run document once (its first claim) and keeps it. The last one
    # also queues the fan-in (O(its degree) too: one record and one dispatch).
    assert {e["reads"] for e in narrow} == {e["reads"] for e in wide} == {1}
    assert median(e["writes"] for e in narrow) == median(e["writes"] for e in wide) == 2
    assert max(e["writes"] for e in narrow + wide) <= 4  # + a shard's roll-up: marker, top
    # No counter document takes more than SHARD increments: 320 arrivals went to 4 shards.
    shards = [f"shard.{i}.fanin.1.fan-in" for i in range(4)]
    counts = wide_store.counters("r", [*shards, "fanin.1.fan-in", "shard.4.fanin.1.fan-in"])
    assert [counts[s]["done"] for s in shards] == [100, 100, 100, 20]
    assert (counts["fanin.1.fan-in"]["done"], counts["fanin.1.fan-in"]["bad"]) == (4, 0)
    assert counts["shard.4.fanin.1.fan-in"] == {}
    assert all(e["whole-run loads"] == 0 for e in narrow + wide)


def test_starting_a_wide_map_writes_no_task_records_and_publishes_in_chunks() -> None:
    """Roots are dispatched without records (their claims create them): a start of 1,000
    writes only the run, and publishes in chunks. A duplicate trigger sends them again, and
    each root still runs once: the second claim finds the record the first one created."""
    store, bus = CountingStore(), MemoryBus()
    bus.record = True
    batches: list[int] = []
    original = bus.publish_all

    def spy(topic: str, events: Sequence[Envelope]) -> None:
        batches.append(len(events))
        original(topic, events)

    bus.publish_all = spy  # type: ignore[method-assign]
    rt = memory_runtime(
        clock=VirtualClock(), functions=map_fan_in.functions(), store=store, bus=bus
    )
    store.put_flow(map_fan_in.spec)
    request = RunRequested(flow="map-fan-in", params={"items": list(range(1000))})
    start_run(rt, request, run_id="r")
    snap = store.load("r")
    assert snap is not None
    assert snap.tasks == {}
    assert max(batches) <= 400
    first = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    assert len(first) == 1000
    start_run(rt, request, run_id="r")  # a duplicate trigger
    again = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)][1000:]
    assert sorted(r.key for r in again) == sorted(r.key for r in first)
    outcome = run_task(rt, first[0])
    assert outcome is not None
    assert advance(rt, "r", outcome)
    assert run_task(rt, again[[r.key for r in again].index(first[0].key)]) is None


class CrashingRollups(CountingStore):
    """Dies (as a process would) right before the first roll-up of each shard is committed."""

    def __init__(self) -> None:
        super().__init__()
        self.crashed: set[str] = set()

    def commit(self, commit: Commit) -> Counts:
        fresh = [m for m in commit.markers if m not in self.crashed]
        if fresh:
            self.crashed.update(fresh)
            raise RuntimeError(f"crash before rolling up {fresh}")
        return super().commit(commit)


def test_a_crash_before_a_shard_roll_up_is_finished_by_the_redelivery_once() -> None:
    store = CrashingRollups()
    items = list(range(250))
    rt, bus = _started(store, map_fan_in, items)
    crashes = 0

    def complete(event: TaskSucceeded | TaskFailed) -> None:
        nonlocal crashes
        try:
            advance(rt, "r", event)
        except RuntimeError:
            crashes += 1
            advance(rt, "r", event)  # Pub/Sub redelivers: the handler never answered

    assert _deliver_all(rt, bus, complete) == 1
    assert crashes == 3  # shards 0, 1, 2 completed by a leaf; shard 2 is the last (50)
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    counts = store.counters("r", ["fanin.1.fan-in"])
    top = counts["fanin.1.fan-in"]
    assert (top["done"], top["bad"]) == (3, 0)  # each shard rolled up once
    plan = rt.plan(snap.run.flow_version, snap.run.params)
    assert rt.blobs.get(rt.flow_result_uri(plan, "r")) == str(sum(i + 1 for i in items)).encode()


def test_a_run_with_hundreds_of_leaves_finishes_through_sharded_counters() -> None:
    store = CountingStore()
    rt, bus = _started(store, map_only, list(range(250)))
    assert _deliver_all(rt, bus, lambda event: advance(rt, "r", event)) == 1
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    top = store.counters("r", ["run.1"])["run.1"]
    assert (top["done"], top["bad"]) == (3, 0)
