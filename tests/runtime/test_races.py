"""Races the interleaving machine does not reach on its own: a cancel between a run's last
completion and its finish, and a start whose dispatches were lost before the duplicate trigger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from contracts import Envelope, RunRequested, RunStatus, TaskRequested
from orchestrator import flow, task
from orchestrator.adapters import MemoryBus, MemoryStore, VirtualClock
from orchestrator.engine import CancelRun
from orchestrator.errors import TransientError
from orchestrator.ports import Commit, Counts
from orchestrator.runtime import Runtime, advance, memory_runtime, run_task, start_run


@task(name="one")
def one() -> int:
    return 1


@flow(name="single")
def single() -> int:
    return one()


@flow(name="three-roots")
def three_roots() -> list[int]:
    return [one(), one(), one()]


class CancelBeforeFinish(MemoryStore):
    """A user cancels the run just before the commit that would finish it."""

    rt: Runtime

    def commit(self, commit: Commit) -> Counts:
        if commit.run is not None and commit.run.status is RunStatus.SUCCEEDED:
            advance(self.rt, commit.run_id, CancelRun("cancelled at the last moment"))
        return super().commit(commit)


def test_a_cancel_just_before_the_finish_is_not_overwritten() -> None:
    store, bus = CancelBeforeFinish(), MemoryBus()
    bus.record = True
    rt = memory_runtime(clock=VirtualClock(), functions=single.functions(), store=store, bus=bus)
    store.rt = rt
    store.put_flow(single.spec)
    start_run(rt, RunRequested(flow="single"), run_id="r")
    (req,) = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    outcome = run_task(rt, req)
    assert outcome is not None
    advance(rt, "r", outcome)
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.CANCELLED
    ends = [e for topic, e in bus.published if topic == rt.topics.finished]
    assert [e.id for e in ends] == ["r/cancelled"]


class LosesTheFirstDispatches(MemoryBus):
    """The process dies while publishing the first dispatches (after their commit)."""

    lost = False

    def publish_all(self, topic: str, events: Sequence[Envelope]) -> None:
        if not self.lost and any(isinstance(e.data, TaskRequested) for e in events):
            self.lost = True
            raise TransientError("publisher died")
        super().publish_all(topic, events)


def test_a_duplicate_trigger_sends_the_dispatches_a_crashed_start_committed() -> None:
    store, bus = MemoryStore(), LosesTheFirstDispatches()
    bus.record = True
    rt: Any = memory_runtime(
        clock=VirtualClock(), functions=three_roots.functions(), store=store, bus=bus
    )
    store.put_flow(three_roots.spec)
    request = RunRequested(flow="three-roots")
    with pytest.raises(TransientError):
        start_run(rt, request, run_id="r")
    assert [e for _, e in bus.published if isinstance(e.data, TaskRequested)] == []
    start_run(rt, request, run_id="r")  # the trigger's redelivery
    sent = sorted(e.data.key for _, e in bus.published if isinstance(e.data, TaskRequested))
    assert sent == ["one", "one-2", "one-3"]
