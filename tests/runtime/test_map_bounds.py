"""Bounds of run-time maps (in memory): a stated maximum width, and children that read their
own element instead of the producer's whole list."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from orchestrator.adapters import MemoryBlobStore, VirtualClock
from orchestrator.contracts import RunStatus, TaskStatus
from orchestrator.runtime import InProcessRunner, RunOutcome
from orchestrator.sdk import Flow
from orchestrator.testing import MemoryBackend
from tests.flows.dynamic import list_process_summarize

WIDTH, SIZE = 2000, 200


class CountingBlobs(MemoryBlobStore):
    """Every read's object and byte count, whole or ranged."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, int]] = []
        self._reads_lock = threading.Lock()

    def _count(self, uri: str, data: bytes) -> bytes:
        with self._reads_lock:
            self.reads.append((uri, len(data)))
        return data

    def get(self, uri: str) -> bytes:
        return self._count(uri, super().get(uri))

    def get_range(self, uri: str, start: int, end: int) -> bytes:
        return self._count(uri, super().get_range(uri, start, end))


def _run(flow: Flow[Any, Any], params: dict[str, Any], blobs: MemoryBlobStore) -> RunOutcome:
    functions = flow.functions()
    with InProcessRunner(clock=VirtualClock(), functions=functions, blobs=blobs) as runner:
        return runner.run(flow.spec, params)


def _reads_of(blobs: CountingBlobs, run_id: str, producer: str) -> list[int]:
    """The sizes of the reads of anything `producer` stored (its result, its list's items)."""
    mine = (f"/runs/{run_id}/{producer}.", f"/runs/{run_id}/items/{producer}/")
    return [n for uri, n in blobs.reads if any(m in uri for m in mine)]


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
    at_limit = backend.run(list_process_summarize, {"count": 5})
    assert at_limit.status is RunStatus.SUCCEEDED
    assert at_limit.value == {"count": 5, "total": sum(len(f"f{i}.csv") for i in range(5))}
