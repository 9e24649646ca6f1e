"""Races the interleaving machine does not reach on its own: a cancel between a run's last
completion and its finish (and that run resumed by two instances), and a start whose dispatches
were lost before the duplicate trigger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from orchestrator import flow, task
from orchestrator.adapters import MemoryBus, MemoryStore, VirtualClock
from orchestrator.contracts import (
    Envelope,
    RunRequested,
    RunStatus,
    RunSucceeded,
    TaskRequested,
    TaskStatus,
)
from orchestrator.engine import CancelRun, ResumeRun
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
    assert [e.id for e in ends] == ["r/1/cancelled"]


def test_that_cancelled_run_resumed_by_two_instances_at_once_ends_succeeded_once() -> None:
    """Every task of the run above succeeded: resuming it ends it at once, and the same resume
    delivered to a second instance (a double click, a redelivery) changes nothing more."""
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
    cancelled = store.load("r")
    assert cancelled is not None
    assert cancelled.run.status is RunStatus.CANCELLED
    other = memory_runtime(clock=rt.clock, functions=single.functions(), store=store, bus=bus)
    bus.published.clear()
    for instance in (rt, other):
        advance(instance, "r", ResumeRun(cancelled.run.attempt))
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    assert snap.run.attempt == cancelled.run.attempt + 1
    ends = [e.data for t, e in bus.published if t == rt.topics.finished]
    assert [type(end) for end in ends] == [RunSucceeded]  # one end, from the first resume
    assert not [e for _, e in bus.published if isinstance(e.data, TaskRequested)]


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


@task(name="leaf")
def leaf(x: int) -> int:
    return x


@task(name="total")
def total(xs: list[int]) -> int:
    return sum(xs)


@flow(name="three-and-total")
def three_and_total() -> int:
    return total(leaf.map([1, 2, 3]))


def test_an_instance_holding_a_cached_run_does_not_act_on_it_after_a_cancel() -> None:
    """Instance A keeps the run document between events; instance B cancels the run. A's later
    events (a late completion, a redelivery of one it applied) create and dispatch nothing."""
    store, bus = MemoryStore(), MemoryBus()
    bus.record = True

    def instance() -> Runtime:
        fns = three_and_total.functions()
        return memory_runtime(clock=VirtualClock(), functions=fns, store=store, bus=bus)

    a, b = instance(), instance()
    store.put_flow(three_and_total.spec)
    start_run(a, RunRequested(flow="three-and-total"), run_id="r")
    requests = [e.data for _, e in bus.published if isinstance(e.data, TaskRequested)]
    outcomes = [run_task(a, req) for req in requests]
    assert all(o is not None for o in outcomes)
    first, second, third = outcomes
    assert first is not None
    assert second is not None
    assert third is not None
    assert advance(a, "r", first)  # A now holds the RUNNING run
    assert a.runs.get("r") is not None
    advance(b, "r", CancelRun("stop"))
    published = len(bus.published)
    advance(a, "r", second)  # its record was cancelled: nothing to apply
    advance(a, "r", first)  # a redelivery re-derives from a fresh read: nothing to do
    advance(a, "r", third)
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.CANCELLED
    assert {t.status for t in snap.tasks.values()} <= {TaskStatus.SUCCEEDED, TaskStatus.CANCELLED}
    assert snap.tasks["total"].status is TaskStatus.CANCELLED  # never queued
    assert [e.data for _, e in bus.published[published:]] == []
