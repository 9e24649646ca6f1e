"""Bounds of run-time maps (in memory): a stated maximum width, and children that read their
own element instead of the producer's whole list."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from orchestrator.adapters import MemoryBlobStore, MemoryBus, MemoryStore, VirtualClock
from orchestrator.contracts import (
    RunRequested,
    RunStatus,
    TaskFailed,
    TaskRequested,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine import claim, claimable
from orchestrator.ports import Commit
from orchestrator.runtime import (
    LEASE_S,
    InProcessRunner,
    RunOutcome,
    Runtime,
    advance,
    memory_runtime,
    read_flow_result,
    run_task,
    start_run,
    tick,
)
from orchestrator.sdk import Flow
from orchestrator.testing import MemoryBackend
from tests.flows.dynamic import list_process_summarize, map_a_part, over_pickled, sized_elements

WIDTH, SIZE = 2000, 200


class CountingBlobs(MemoryBlobStore):
    """Every read's object and byte count, whole or ranged."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, int]] = []
        self.written: list[str] = []
        self.ranged: list[str] = []  # every ranged read tried, found or not
        self._reads_lock = threading.Lock()

    def put(self, uri: str, data: bytes, content_type: str, *, overwrite: bool = False) -> None:
        super().put(uri, data, content_type, overwrite=overwrite)
        with self._reads_lock:
            self.written.append(uri)

    def _count(self, uri: str, data: bytes) -> bytes:
        with self._reads_lock:
            self.reads.append((uri, len(data)))
        return data

    def get(self, uri: str) -> bytes:
        return self._count(uri, super().get(uri))

    def get_range(self, uri: str, start: int, end: int) -> bytes:
        with self._reads_lock:
            self.ranged.append(uri)
        return self._count(uri, super().get_range(uri, start, end))


def _run(flow: Flow[Any, Any], params: dict[str, Any], blobs: MemoryBlobStore) -> RunOutcome:
    functions = flow.functions()
    with InProcessRunner(clock=VirtualClock(), functions=functions, blobs=blobs) as runner:
        return runner.run(flow.spec, params)


def _reads_of(blobs: CountingBlobs, run_id: str, producer: str) -> list[int]:
    """The sizes of the reads of anything `producer` stored (its result, its list's items)."""
    mine = (f"/runs/{run_id}/{producer}.", f"/runs/{run_id}/items/{producer}/")
    return [n for uri, n in blobs.reads if any(m in uri for m in mine)]


def test_each_child_of_a_wide_run_time_map_reads_its_own_element_not_the_list() -> None:
    blobs = CountingBlobs()
    out = _run(sized_elements, {"count": WIDTH, "size": SIZE}, blobs)
    assert out.run.status is RunStatus.SUCCEEDED
    assert out.value == {"count": WIDTH, "total": WIDTH * SIZE}
    reads = _reads_of(blobs, out.run.run_id, "padded")
    element = SIZE + len('""\n')  # one JSON line
    # Per child: its two offsets (16 bytes), then its element; the list is ~406 KB.
    assert len(reads) == 2 * WIDTH
    assert sorted(set(reads)) == [16, element]
    assert sum(reads) == WIDTH * (16 + element)


def test_a_child_of_a_map_over_part_of_a_result_reads_its_own_element() -> None:
    blobs = CountingBlobs()
    out = _run(map_a_part, {"count": 50}, blobs)
    assert out.run.status is RunStatus.SUCCEEDED
    assert out.value == {"count": 50, "total": sum(10 * i for i in range(50))}
    reads = _reads_of(blobs, out.run.run_id, "listing")
    assert len(reads) == 2 * 50
    assert max(reads) < 40  # {"name":"in/49.csv","size":490} and a newline


def test_a_run_time_map_longer_than_the_maximum_width_fails_its_map_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUMOFLOW_MAX_MAP_WIDTH", "5")
    backend = MemoryBackend()
    out = backend.run(list_process_summarize, {"count": 6})
    assert out.status is RunStatus.FAILED
    assert out.tasks["names"].status is TaskStatus.SUCCEEDED
    failed = out.tasks["measure"]
    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None
    assert failed.error.type == "MapError"
    assert failed.error.message == (
        "task 'measure' maps over result of task 'names', a list of 6 elements: more than the "
        "maximum map width, 5. Raise KUMOFLOW_MAX_MAP_WIDTH (default 10000) where the "
        "orchestrator runs, or map over batches of the list"
    )
    assert not [k for k in out.tasks if k.startswith("measure[")]  # no child was made
    assert out.tasks["summarize"].status is TaskStatus.SKIPPED
    assert backend.rt.letters.list() == []  # failed by the engine's rules, not dead-lettered
    blobs = CountingBlobs()
    assert _run(list_process_summarize, {"count": 6}, blobs).run.status is RunStatus.FAILED
    assert not [uri for uri in blobs.written if "/items/" in uri]  # none for a map that fails
    at_limit = backend.run(list_process_summarize, {"count": 5})
    assert at_limit.status is RunStatus.SUCCEEDED
    assert at_limit.value == {"count": 5, "total": sum(len(f"f{i}.csv") for i in range(5))}


# --------------------------------------------------------------------------------------------
# Every path that reports a producer's result stores the items its map's children read, made
# from the result as stored.
# --------------------------------------------------------------------------------------------


def _started(
    flow: Flow[Any, Any], params: dict[str, Any], blobs: MemoryBlobStore
) -> tuple[Runtime, MemoryStore, MemoryBus, VirtualClock, TaskRequested]:
    store, bus, clock = MemoryStore(), MemoryBus(), VirtualClock()
    bus.record = True
    rt = memory_runtime(clock=clock, functions=flow.functions(), store=store, bus=bus, blobs=blobs)
    store.put_flow(flow.spec)
    start_run(rt, RunRequested(flow=flow.spec.name, params=params), run_id="r1")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    return rt, store, bus, clock, req


def _die_after_storing(rt: Runtime, req: TaskRequested, result: bytes) -> None:
    """The producer's worker claimed, stored its result, and died before reporting it."""
    snap = rt.state.load("r1", [req.key])
    assert snap is not None
    plan = rt.plan_of(snap.run)
    now = rt.clock.now()
    record = claimable(snap.run, plan, req.key, snap.tasks.get(req.key), 1, now)
    assert record is not None
    taken = claim(record, req.attempt, "dead-token", "dead", now, LEASE_S)
    assert taken is not None
    rt.state.commit(Commit(run_id="r1", tasks=[(taken, snap.etags.get(req.key))]))
    rt.blobs.put(rt.task_result_uri(plan, "r1", req.key), result, "application/json")


def _deliver_all(rt: Runtime, bus: MemoryBus, seen: int = 0) -> None:
    while seen < len(bus.published):
        topic, envelope = bus.published[seen]
        seen += 1
        if topic == rt.topics.tasks:
            assert isinstance(envelope.data, TaskRequested)
            run_task(rt, envelope.data)
        elif topic == rt.topics.events:
            assert isinstance(envelope.data, TaskSucceeded | TaskFailed)
            advance(rt, "r1", envelope.data)


def _measured(rt: Runtime, blobs: CountingBlobs) -> tuple[Any, list[int]]:
    snap = rt.state.load("r1")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    value = read_flow_result(rt, rt.plan_of(snap.run), snap.run)
    return value, _reads_of(blobs, "r1", "names")


NAMES = b'["n0.csv","n1.csv","n22.csv"]'
TOTAL = {"count": 3, "total": 6 + 6 + 7}


def test_a_result_found_stored_when_the_lease_ran_out_gets_its_items_before_it_is_reported() -> (
    None
):
    blobs = CountingBlobs()
    rt, _store, bus, clock, req = _started(list_process_summarize, {"count": 5}, blobs)
    _die_after_storing(rt, req, NAMES)
    clock.sleep(2 * LEASE_S + 1)
    start = len(bus.published)
    assert tick(rt) == 1  # the orchestrator reads the stored result: 3 names, not 5
    blobs.reads.clear()
    _deliver_all(rt, bus, start)
    value, reads = _measured(rt, blobs)
    assert value == TOTAL
    assert len(reads) == 2 * 3  # each child: its offsets, its element
    assert max(reads) == 16


def test_a_duplicate_request_finding_the_result_stored_stores_the_items_and_reports() -> None:
    blobs = CountingBlobs()
    rt, _store, bus, _clock, req = _started(list_process_summarize, {"count": 5}, blobs)
    _die_after_storing(rt, req, NAMES)
    start = len(bus.published)
    reported = run_task(rt, req)  # the request again: the dead worker's claim is still held
    assert isinstance(reported, TaskSucceeded)
    assert reported.lengths == {"measure": 3}
    blobs.reads.clear()
    _deliver_all(rt, bus, start)
    value, reads = _measured(rt, blobs)
    assert value == TOTAL
    assert len(reads) == 2 * 3
    assert max(reads) == 16


def test_a_result_another_attempt_stored_first_is_the_one_measured_and_itemized() -> None:
    blobs = CountingBlobs()
    rt, _store, bus, _clock, req = _started(list_process_summarize, {"count": 5}, blobs)
    snap = rt.state.load("r1", [])
    assert snap is not None
    uri = rt.task_result_uri(rt.plan_of(snap.run), "r1", req.key)
    blobs.put(uri, NAMES, "application/json")  # as a slow earlier execution would have
    _deliver_all(rt, bus)  # this attempt computes 5 names; 3 are the task's result
    value, reads = _measured(rt, blobs)
    assert value == TOTAL
    assert len(reads) == 1 + 2 * 3  # its worker reads the stored result once


class WithoutItems(CountingBlobs):
    """A store whose items objects never arrive: a run started before they existed."""

    def put(self, uri: str, data: bytes, content_type: str, *, overwrite: bool = False) -> None:
        if "/items/" not in uri:
            super().put(uri, data, content_type, overwrite=overwrite)


def test_a_child_whose_producer_stored_no_items_reads_the_whole_list() -> None:
    blobs = WithoutItems()
    out = _run(list_process_summarize, {"count": 4}, blobs)
    assert out.run.status is RunStatus.SUCCEEDED
    assert out.value == {"count": 4, "total": 4 * len("f0.csv")}
    reads = _reads_of(blobs, out.run.run_id, "names")
    whole = len(json.dumps([f"f{i}.csv" for i in range(4)], separators=(",", ":")))
    assert sorted(reads) == [whole] * 4  # each child: one failed ranged read, then the list


def test_children_of_a_map_over_a_pickled_list_read_the_whole_list() -> None:
    blobs = CountingBlobs()
    out = _run(over_pickled, {"count": 4}, blobs)
    assert out.run.status is RunStatus.SUCCEEDED
    assert not [uri for uri in blobs.written if "/items/" in uri]
    assert blobs.ranged == []  # the plan says pickle: no child looks for items
    reads = _reads_of(blobs, out.run.run_id, "pickled-pairs")
    assert len(reads) == 4
    assert len(set(reads)) == 1


@pytest.mark.parametrize("raw", ["0", "-5", "ten", "1e4"])
def test_a_maximum_map_width_that_is_not_a_positive_whole_number_is_refused(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("KUMOFLOW_MAX_MAP_WIDTH", raw)
    with pytest.raises(ValueError, match="KUMOFLOW_MAX_MAP_WIDTH must be a positive whole number"):
        memory_runtime()
    monkeypatch.setenv("KUMOFLOW_MAX_MAP_WIDTH", " 20000 ")
    assert memory_runtime().max_map_width == 20_000
    monkeypatch.delenv("KUMOFLOW_MAX_MAP_WIDTH")
    assert memory_runtime().max_map_width == 10_000
