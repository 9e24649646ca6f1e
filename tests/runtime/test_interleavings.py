"""Orchestrator and worker instances interleaved one store call at a time (memory adapters).

A hypothesis state machine drives K instances (tests/runtime/cluster.py) over one shared store:
it delivers pooled messages in any order and more than once, alone or in concurrent bursts,
steps handlers store call by store call, kills instances before any store call or at a publish
(after their commit), and ticks the sweeper with the clock moved past timers and leases. At the
end it drains everything and checks the guarantees of DESIGN.md: every run ends, with the right
value, announced under one event id; a finished run never changes; no task is left unfinished;
user code ran each attempt at most once, and each task as often as its planned failures say
(a lease that ran out aside: that attempt failed and the retry policy decided).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from orchestrator.contracts import Run, RunStatus
from tests.flows import interleaved
from tests.runtime.cluster import BIG_JUMP_S, Cluster, Message

MAPPED = (
    "il-map-fan-in",
    "il-two-sinks",
    "il-returns-map",
    "il-run-time-map",
    "il-returns-run-time-map",
)
WHO = st.integers(0, 2)  # an instance, modulo those eligible
PICK = st.integers(0, 30)  # a message, modulo those eligible
PARK_AFTER = st.sampled_from([None, 1, 0, 1, 2, 3])  # None: run to the end; 1: read, not written


@st.composite
def run_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A flow of the family and its parameters, with which tasks fail (and how often)."""
    flow = draw(st.sampled_from(sorted(interleaved.FLOWS)))
    params: dict[str, Any] = {}
    if flow not in ("il-returns-map", "il-returns-run-time-map"):
        params["x"] = draw(st.integers(0, 5))
    if flow in MAPPED:
        params["items"] = draw(st.lists(st.integers(0, 3), max_size=6))
    names = sorted(set(interleaved.names(flow, params)))
    # 1: fails once, then its retry succeeds; 2: fails for good, and so does the run.
    failing = st.dictionaries(st.sampled_from(names), st.sampled_from([1, 1, 2]), max_size=2)
    params["fails"] = draw(failing) if names else {}
    return flow, params


def _unarmed(self: Interleavings) -> list[int]:
    if self.cluster is None:
        return []
    return [i for i in self.cluster.busy() if self.cluster.instances[i].bus.crash_in is None]


def _free(self: Interleavings) -> bool:
    return self.cluster is not None and bool(self.cluster.free())


def _busy(self: Interleavings) -> bool:
    return self.cluster is not None and bool(self.cluster.busy())


class Interleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster: Cluster | None = None
        self.ended: dict[str, Run] = {}  # a finished run's record never changes again
        self.broken = False  # a step failed: teardown only cleans up, so the failure stays

    @property
    def c(self) -> Cluster:
        assert self.cluster is not None
        return self.cluster

    @contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.broken = True
            raise

    @initialize(k=st.integers(2, 3), runs=st.lists(run_requests(), min_size=1, max_size=3))
    def start(self, k: int, runs: list[tuple[str, dict[str, Any]]]) -> None:
        self.cluster = Cluster(k)
        for n, (flow, params) in enumerate(runs):
            self.cluster.request_run(f"run-{n}", flow, params)

    def _handle(self, index: int, msg: Message, park_after: int | None) -> None:
        """Deliver; then run to the end (None) or park after `park_after` store calls."""
        self.c.deliver(index, msg)
        if park_after is None:
            self.c.finish(index)
        for _ in range(park_after or 0):
            if self.c.instances[index].gate.busy:
                self.c.step(index)

    @precondition(_free)
    @rule(who=WHO, pick=PICK, park_after=PARK_AFTER, again=st.sampled_from([False, False, True]))
    def deliver(self, who: int, pick: int, park_after: int | None, again: bool) -> None:
        """Any unacknowledged message that is not in flight (out of order when pick > 0); or,
        `again`, a duplicate of any message ever published, in flight or acknowledged."""
        with self.guard():
            free, pending = self.c.free(), self.c.deliverable()
            if again or not pending:
                pending = self.c.history[::-1]
            if pending:
                self._handle(free[who % len(free)], pending[pick % len(pending)], park_after)

    @precondition(lambda self: _free(self) and bool(self.c.deliverable()))
    @rule(pick=PICK, schedule=st.lists(WHO, max_size=12))
    def wave(self, pick: int, schedule: list[int]) -> None:
        """Every message waiting now, handled as bursts of pushes: one message per free
        instance, all in flight at once together with the handlers already in flight, stepped
        as `schedule` says and then round-robin to their ends (reads before the others'
        commits, commits in any order). Gets runs to their ends, concurrently."""
        with self.guard():
            pending = self.c.deliverable()
            pending = pending[pick % len(pending) :] + pending[: pick % len(pending)]
            while pending:
                burst = list(zip(self.c.free(), pending, strict=False))
                pending = pending[len(burst) :]
                for index, msg in burst:
                    self.c.deliver(index, msg)
                for who in schedule:
                    if busy := self.c.busy():
                        self.c.step(busy[who % len(busy)])
                while busy := self.c.busy():
                    for index in busy:
                        if self.c.instances[index].gate.busy:
                            self.c.step(index)

    @precondition(_busy)
    @rule(who=WHO, to_end=st.booleans())
    def step(self, who: int, to_end: bool) -> None:
        """One store call of a parked handler, or all the rest of them."""
        with self.guard():
            busy = self.c.busy()
            (self.c.finish if to_end else self.c.step)(busy[who % len(busy)])

    @precondition(_busy)
    @rule(who=WHO)
    def kill(self, who: int) -> None:
        """A handler in flight dies before its next store call (after its last commit)."""
        with self.guard():
            busy = self.c.busy()
            self.c.kill(busy[who % len(busy)])

    @precondition(lambda self: bool(_unarmed(self)))
    @rule(who=WHO, after=st.integers(0, 2))
    def crash_at_a_publish(self, who: int, after: int) -> None:
        """A handler in flight dies at a later publish (after `after` more succeed): between
        its commit and its publishes, or part way through a batch of them."""
        unarmed = _unarmed(self)
        self.c.instances[unarmed[who % len(unarmed)]].bus.crash_in = after

    @precondition(lambda self: _free(self) and (_busy(self) or not self.c.deliverable()))
    @rule(who=WHO, jump=st.sampled_from([0.0, 6.0, 61.0, BIG_JUMP_S]))
    def sweep(self, who: int, jump: float) -> None:
        """A sweeper tick after `jump` seconds: past retry delays, abandoned outboxes, leases.
        Only beside a handler in flight or when nothing waits, so runs still get somewhere."""
        with self.guard():
            self.c.advance_clock(jump)
            free = self.c.free()
            self.c.start_tick(free[who % len(free)])

    @invariant()
    def nothing_went_wrong_so_far(self) -> None:
        if self.cluster is None:
            return
        with self.guard():
            assert not self.c.violations, "\n".join(self.c.violations)
            for run_id, events in self.c.finished.items():
                ids = {e.id for e in events}
                assert len(ids) == 1, f"{run_id}: run finished as {sorted(ids)}"
            for run_id in self.c.runs:
                snap = self.c.store.load(run_id)
                if snap is None:
                    continue
                before = self.ended.get(run_id)
                assert before in (None, snap.run), f"{run_id} ended {before}, then {snap.run}"
                if snap.run.status.terminal:
                    self.ended[run_id] = snap.run

    def teardown(self) -> None:
        if self.cluster is None:
            return
        try:
            if not self.broken:
                self.c.drain()
                problems = self.c.problems()
                assert not problems, report(self.c, problems)
        finally:
            self.c.close()


def report(cluster: Cluster, problems: list[str]) -> str:
    tail = "\n  ".join(cluster.log[-60:])
    return "\n".join(problems) + f"\nlast harness events:\n  {tail}"


# ~10-15 s when it passes. A failure is shrunk before it is printed, for up to Hypothesis's own
# 5-minute cap: the timeout leaves room for that, so the minimal example is not lost.
@pytest.mark.timeout(600)
def test_interleaved_instances_keep_every_guarantee() -> None:
    run_state_machine_as_test(
        Interleavings,
        settings=settings(
            max_examples=200,
            stateful_step_count=40,
            deadline=None,
            # No explain phase: it re-runs failing examples under a tracer, for minutes.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_two_last_leaves_completing_concurrently_still_finish_the_run() -> None:
    """DESIGN.md's lost finish: both orchestrator instances read the run before either commits
    its leaf's completion, then both commit; one of them must still finish the run."""
    c = Cluster(2)
    c.request_run("r", "il-two-sinks", {"x": 1, "items": [], "fails": {}})
    try:
        for kind in ("start", "task", "event"):  # start, run `base`, advance: left and right
            (msg,) = c.deliverable()
            assert msg.kind == kind
            c.deliver(0, msg)
            c.finish(0)
        tasks = c.deliverable()
        assert sorted(m.payload.key for m in tasks) == ["left", "right"]  # type: ignore[union-attr]
        for index, msg in enumerate(tasks):
            c.deliver(index, msg)
            c.finish(index)
        events = c.deliverable()
        assert [m.kind for m in events] == ["event", "event"]
        for index, msg in enumerate(events):
            c.deliver(index, msg)  # parks before its first store call
        for index in (0, 1):
            gate = c.instances[index].gate
            while gate.busy and gate.next_call != "commit":
                c.step(index)
            assert gate.next_call == "commit", f"instance {index} ended without committing"
        c.finish(0)
        c.finish(1)
        c.drain()
        problems = c.problems()
        assert not problems, report(c, problems)
        assert c.store.load("r").run.status is RunStatus.SUCCEEDED  # type: ignore[union-attr]
    finally:
        c.close()
