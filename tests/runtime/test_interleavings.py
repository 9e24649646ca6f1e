"""Orchestrator and worker instances interleaved one store call at a time (memory adapters).

A hypothesis state machine drives K instances (tests/runtime/cluster.py) of the real runtime
(start_run, run_task, advance, tick) over one shared store: it delivers pooled messages in any
order and more than once, alone or in concurrent bursts, steps handlers store call by store
call, kills instances before any store call, at a publish or at the runtime's "after-commit"
fault point, makes the bus fail for a while, ticks the sweeper with a virtual clock moved past
timers and leases, and runs an operator's `runs cancel` / `runs retry` at any step; for waits,
it sends events (before or after a run waits, duplicated) and gives pauses input (valid or
not, two at once, racing a cancel or the pause's timeout).

After every step: nothing the harness watches went wrong (no unexpected error, no user code
started outside a live claim of a RUNNING run), an ended run holds no unfinished task, a
RUNNING run has its recheck timer and every retry wait its timer, each flow attempt is
announced under one event id of its own. At the end it drains everything (delivers, redelivers,
ticks far ahead) and checks that every run ended, with what the same flow gives in-process
(orchestrator.runtime.InProcessRunner, resumed as often), which in turn must match the hand-
worked expectation of tests/flows/interleaved.py; user code ran each attempt at most once, and
each task as often as in-process (a cancel or a lease that ran out aside).

One test per feature (a family of flows, and the faults and operator calls that matter to it),
so that a feature whose scenario meets a known bug is marked xfail(strict=True) alone.

Settings profiles (KUMOFLOW_HYPOTHESIS_PROFILE): "ci" (the default, and with CI=true):
derandomized, CI_EXAMPLES examples per feature, no shrinking (a failure prints the example as
found; rerun it under "deep" to shrink it). "deep": random, DEEP_EXAMPLES per feature, longer
programs, shrinking on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

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

from orchestrator.adapters import DB_FILE, SqliteStore
from orchestrator.contracts import Run, RunStatus, TaskStatus
from orchestrator.runtime import EARLY_WAIT, EVENT_RETENTION_ENV
from tests.flows import interleaved
from tests.runtime.cluster import BIG_JUMP_S, Cluster, Message

CI_EXAMPLES = 40
DEEP_EXAMPLES = 1000
settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    max_examples=DEEP_EXAMPLES,
    stateful_step_count=60,
    deadline=None,
    # No explain phase: it re-runs failing examples under a tracer, for minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = os.environ.get("KUMOFLOW_HYPOTHESIS_PROFILE", "ci")

CORE = ("il-chain", "il-diamond", "il-map-fan-in", "il-two-sinks", "il-returns-map")
RUN_TIME_MAPS = ("il-run-time-map", "il-returns-run-time-map", "il-nested-map")
GATES = ("il-branch", "il-switch")
SUBFLOWS = ("il-subflow", "il-map-subflow")
WAITS = ("il-sleep", "il-wait-event", "il-wait-event-late", "il-pause")
WHO = st.integers(0, 2)  # an instance, modulo those eligible
PICK = st.integers(0, 30)  # a message, modulo those eligible
PARK_AFTER = st.sampled_from([None, 1, 0, 1, 2, 3])  # None: run to the end; 1: read, not written


def run_requests(flows: tuple[str, ...]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """A flow of the family and its parameters, with which tasks fail (and how often)."""

    @st.composite
    def draw_one(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
        flow = draw(st.sampled_from(flows))
        spec = interleaved.FLOWS[flow].spec
        declared = {p.name for p in spec.params}
        params: dict[str, Any] = {}
        if "x" in declared:
            params["x"] = draw(st.integers(0, 5))
        if "items" in declared:
            params["items"] = draw(st.lists(st.integers(0, 3), max_size=5))
        if "need" in declared:
            params["need"] = draw(st.integers(0, 2))
        names = sorted(set(interleaved.names(flow, params)))
        # 1: fails once, then its retry succeeds; 2: fails for good, and so does the run.
        failing = st.dictionaries(st.sampled_from(names), st.sampled_from([1, 1, 2]), max_size=2)
        params["fails"] = draw(failing) if names else {}
        return flow, params

    return draw_one()


def _unarmed(self: Interleavings) -> list[int]:
    if self.cluster is None:
        return []
    return [i for i in self.cluster.busy() if self.cluster.instances[i].bus.crash_in is None]


def _free(self: Interleavings) -> bool:
    return self.cluster is not None and bool(self.cluster.free())


def _busy(self: Interleavings) -> bool:
    return self.cluster is not None and bool(self.cluster.busy())


class Interleavings(RuleBasedStateMachine):
    """The machine; a subclass per feature names its flows and which injections it uses."""

    FLOWS: ClassVar[tuple[str, ...]] = CORE
    OUTAGES: ClassVar[bool] = False  # the bus fails for a while
    OPERATOR: ClassVar[bool] = False  # `runs cancel` and `runs retry` at any step
    SQLITE: ClassVar[bool] = False  # the state store is the local history's SQLite file
    LIMIT: ClassVar[int | None] = None  # the limit of interleaved.LIMIT_KEY, when one is set
    RATES: ClassVar[bool] = False  # check interleaved.RATE over every window of its period
    JOBS: ClassVar[bool] = False  # job executions run (again) or die when the machine says
    # Events for the runs' waits (before or after they wait, duplicated) and operators'
    # inputs to their pauses (valid or not, two at once, racing a cancel or a timeout).
    WAITS: ClassVar[bool] = False
    PUSHES: ClassVar[bool] = False  # timers' own pushes (Cloud Tasks): early, late, twice
    RUN_SLOTS: ClassVar[bool] = False  # a flow of the family has max_active_runs
    # The wait events' retention (days) while the machine runs; None: the default, which its
    # clock never passes. "0": an event goes once no live run can take it (no resumes then:
    # a run resumed after its events expired may miss them, as the docs say).
    EVENT_RETENTION_DAYS: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.retention_before = os.environ.get(EVENT_RETENTION_ENV)
        if self.EVENT_RETENTION_DAYS is not None:
            os.environ[EVENT_RETENTION_ENV] = self.EVENT_RETENTION_DAYS
        self.cluster: Cluster | None = None
        self.ended: dict[tuple[str, int], Run] = {}  # an ended attempt's record never changes
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

    @initialize(k=st.integers(2, 3), runs=st.data())
    def start(self, k: int, runs: st.DataObject) -> None:
        requests = runs.draw(st.lists(run_requests(self.FLOWS), min_size=1, max_size=3))
        if self.SQLITE:
            self.folder = tempfile.mkdtemp(prefix="kumoflow-interleavings-")
            self.cluster = Cluster(k, store=SqliteStore(Path(self.folder) / DB_FILE))
        else:
            self.cluster = Cluster(k)
        if self.LIMIT is not None:
            for key in (interleaved.LIMIT_KEY, *interleaved.KEYED):
                self.cluster.store.set_limit(key, self.LIMIT, self.c.clock.now())
        for n, (flow, params) in enumerate(requests):
            self.cluster.request_run(f"run-{n}", flow, params)

    def _handle(self, index: int, msg: Message, park_after: int | None) -> None:
        """Deliver; then run to the end (None) or park after `park_after` store calls."""
        self.c.deliver(index, msg)
        self._park(index, park_after)

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

    @precondition(lambda self: self.PUSHES and _free(self) and bool(self.c.timers.armed))
    @rule(
        who=WHO,
        pick=PICK,
        late=st.sampled_from([None, 0.0, 0.0, 3.0, 61.0]),
        park_after=PARK_AFTER,
    )
    def push(self, who: int, pick: int, late: float | None, park_after: int | None) -> None:
        """Any timer's push, any number of times: early (`late` None: now, whatever its due
        time), or at its due time plus `late` seconds (the clock moved on to it). Beside the
        ticks, which still fire the same timers: firing must be idempotent."""
        with self.guard():
            pushes = self.c.timers.pushes()
            push = pushes[pick % len(pushes)]
            wait = (push.due_at - self.c.clock.now()).total_seconds()
            if late is not None and wait + late > 0:
                self.c.advance_clock(wait + late)
            elif late is None and 0 < wait <= EARLY_WAIT.total_seconds():
                self.c.advance_clock(wait)  # a push a few ms early waits: as if on time here
            free = self.c.free()
            index = free[who % len(free)]
            self.c.start_push(index, push)
            self._park(index, park_after)

    @precondition(lambda self: _busy(self) or _free(self))
    @rule(who=WHO)
    def crash_after_commit(self, who: int) -> None:
        """An instance dies at the runtime's next "after-commit" fault point (rt.fault)."""
        everyone = self.c.busy() + self.c.free()
        self.c.instances[everyone[who % len(everyone)]].fault_armed = True

    @precondition(lambda self: self.OUTAGES and self.cluster is not None and not self.c.outage)
    @rule(publishes=st.sampled_from([1, 1, 2, 6]), minutes=st.sampled_from([0, 0, 60]))
    def outage(self, publishes: int, minutes: int) -> None:
        """The bus fails the next `publishes` publishes, of any instance, and every publish
        for `minutes` of virtual time: retryable errors (the sweeper's items back off)."""
        self.c.outage = publishes
        if minutes:
            self.c.outage_until = self.c.clock.now() + timedelta(minutes=minutes)

    @precondition(lambda self: self.JOBS and _free(self) and bool(self.c.jobs.running()))
    @rule(
        who=WHO,
        pick=PICK,
        park_after=PARK_AFTER,
        again=st.sampled_from([False, False, True]),
        dies=st.sampled_from([False, False, True]),
    )
    def run_job(self, who: int, pick: int, park_after: int | None, again: bool, dies: bool) -> None:
        """A job execution's container runs its entrypoint on a free instance; `again`: a
        second container of an execution already running (a platform retry, a duplicate);
        `dies`: it dies at its report (its result stored, the completion never published)."""
        with self.guard():
            names = list(self.c.jobs.running()) if again else self.c.idle_jobs()
            if names:
                free = self.c.free()
                index = free[who % len(free)]
                if dies:
                    self.c.instances[index].bus.crash_in = 0
                self.c.start_job(index, names[pick % len(names)])
                self._park(index, park_after)

    @precondition(lambda self: self.JOBS and self.cluster is not None and bool(self.c.idle_jobs()))
    @rule(pick=PICK)
    def job_dies(self, pick: int) -> None:
        """An execution ends failed without running (its container never started)."""
        names = self.c.idle_jobs()
        self.c.jobs.finish(names[pick % len(names)], 1, "failed: the container did not start")

    @precondition(lambda self: self.OPERATOR and _free(self))
    @rule(who=WHO, which=st.integers(0, 2), park_after=PARK_AFTER)
    def cancel(self, who: int, which: int, park_after: int | None) -> None:
        """`kumoflow runs cancel` of any run, whatever it is doing (a no-op once it ended)."""
        with self.guard():
            runs = [r for r in sorted(self.c.runs) if self.c.store.load(r, []) is not None]
            if not runs:
                return  # nothing to cancel yet (the CLI would say "no run")
            free = self.c.free()
            index = free[who % len(free)]
            self.c.start_cancel(index, runs[which % len(runs)])
            self._park(index, park_after)

    @precondition(lambda self: self.OPERATOR and _free(self))
    @rule(who=WHO, which=st.integers(0, 2), stale=st.booleans(), park_after=PARK_AFTER)
    def resume(self, who: int, which: int, stale: bool, park_after: int | None) -> None:
        """`kumoflow runs retry` of a run that ended FAILED or CANCELLED; `stale`: with the
        flow attempt before (an operator's old view, or a repeated request): a no-op."""
        with self.guard():
            ended = [
                snap.run
                for run_id in sorted(self.c.runs)
                if (snap := self.c.store.load(run_id, [])) is not None
                and snap.run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
            ]
            if not ended:
                return
            run = ended[which % len(ended)]
            free = self.c.free()
            index = free[who % len(free)]
            attempt = run.attempt - 1 if stale and run.attempt > 1 else run.attempt
            self.c.start_resume(index, run.run_id, attempt)
            self._park(index, park_after)

    @precondition(lambda self: self.WAITS and self.cluster is not None)
    @rule(which=st.integers(0, 2), other=st.sampled_from([False, False, True]), n=PICK)
    def send_event(self, which: int, other: bool, n: int) -> None:
        """An event the runs of one run's `x` wait for (`other`: of an x beside it), before
        or after they wait; the same n again is a duplicate delivery."""
        runs = sorted(self.c.runs)
        x = self.c.runs[runs[which % len(runs)]][1].get("x", 0)
        self.c.send(x + 1 if other else x, n % 3)

    @precondition(lambda self: self.EVENT_RETENTION_DAYS is not None and _free(self))
    @rule(who=WHO, park_after=PARK_AFTER, jump=st.sampled_from([0.0, 1.0, 61.0]))
    def expire_events(self, who: int, park_after: int | None, jump: float) -> None:
        """The sweeper's look for wait events past retention, at any step, `jump` seconds on
        (past the events just sent): an event a live run's wait may still take must stay (the
        waits would time out, or take a later event, without it)."""
        with self.guard():
            self.c.advance_clock(jump)
            free = self.c.free()
            index = free[who % len(free)]
            self.c.start_expiry(index)
            self._park(index, park_after)

    @precondition(lambda self: self.WAITS and _free(self))
    @rule(
        who=WHO,
        which=st.integers(0, 2),
        n=st.integers(0, 2),
        bad=st.sampled_from([False, False, True]),
        park_after=PARK_AFTER,
    )
    def give_input(self, who: int, which: int, n: int, bad: bool, park_after: int | None) -> None:
        """`kumoflow runs resume RUN --input` with {"n": n} (`bad`: not the form's shape),
        whatever the run is doing; parked part way, a second one can run beside it."""
        with self.guard():
            runs = sorted(self.c.runs)
            free = self.c.free()
            index = free[who % len(free)]
            data: Any = {"n": "many"} if bad else {"n": n}
            self.c.start_give(index, runs[which % len(runs)], data)
            self._park(index, park_after)

    def _park(self, index: int, park_after: int | None) -> None:
        if park_after is None:
            self.c.finish(index)
        for _ in range(park_after or 0):
            if self.c.instances[index].gate.busy:
                self.c.step(index)

    @invariant()
    def nothing_went_wrong_so_far(self) -> None:
        if self.cluster is None:
            return
        with self.guard():
            assert not self.c.violations, "\n".join(self.c.violations)
            problems = self.c.lost_timers()
            for run in self.c.store.list_runs(limit=10_000):
                problems.extend(self.c.unfinished(run.run_id))
            for run_id in self.c.runs:
                problems.extend(self.c.announcement_problems(run_id))
                snap = self.c.store.load(run_id, [])
                if snap is None:
                    continue
                before = self.ended.get((run_id, snap.run.attempt))
                if before not in (None, snap.run):
                    problems.append(f"{run_id} ended {before}, then {snap.run}")
                if snap.run.status.terminal:
                    self.ended[(run_id, snap.run.attempt)] = snap.run
            problems.extend(self._over_the_limit())
            problems.extend(self._too_many_runs())
            problems.extend(self._over_the_rate())
            assert not problems, report(self.c, problems)

    def _too_many_runs(self) -> list[str]:
        """Never more runs of a flow RUNNING than its max_active_runs."""
        running: dict[str, list[str]] = {}
        for run in self.c.store.list_runs(limit=10_000):
            if run.status is RunStatus.RUNNING:
                running.setdefault(run.flow, []).append(run.run_id)
        return [
            f"{len(ids)} runs of {flow} running, at most {most} may: {ids}"
            for flow, ids in running.items()
            if (most := interleaved.FLOWS[flow].spec.options.max_active_runs) is not None
            and len(ids) > most
        ]

    def _over_the_limit(self) -> list[str]:
        """Never more attempts of the key running (claimed, in the store) than its limit."""
        if self.LIMIT is None:
            return []
        snaps = [self.c.store.load(r.run_id) for r in self.c.store.list_runs(limit=10_000)]
        running: dict[str, list[str]] = {}
        for snap in snaps:
            for t in snap.tasks.values() if snap is not None else ():
                if t.status is TaskStatus.RUNNING and t.name in interleaved.LIMITED_TASKS:
                    # A computed key is the one its attempt recorded when it took the slot.
                    key = t.attempts[-1].slot_key or interleaved.LIMIT_KEY
                    running.setdefault(key, []).append(f"{t.run_id}/{t.key}")
        return [
            f"{len(held)} attempts of {key}, limited to {self.LIMIT}, run: {held}"
            for key, held in running.items()
            if len(held) > self.LIMIT
        ]

    def _over_the_rate(self) -> list[str]:
        """Never more attempts of the rate's tasks started (their claim times, by the virtual
        clock) in any window of one period than the rate permits."""
        if not self.RATES:
            return []
        rate = interleaved.RATE
        snaps = [self.c.store.load(r.run_id) for r in self.c.store.list_runs(limit=10_000)]
        starts = sorted(
            (a.started_at, f"{t.run_id}/{t.key}#{a.number}")
            for snap in snaps
            if snap is not None
            for t in snap.tasks.values()
            if t.name in interleaved.RATED_TASKS
            for a in t.attempts
            if a.started_at is not None
        )
        for i, (at, _) in enumerate(starts):
            inside = [who for when, who in starts[i:] if when < at + rate.period]
            if len(inside) > rate.count:
                return [f"{len(inside)} starts within {rate.period} of {at} ({rate}): {inside}"]
        return []

    def teardown(self) -> None:
        try:
            self._teardown()
        finally:
            if self.retention_before is None:
                os.environ.pop(EVENT_RETENTION_ENV, None)
            else:
                os.environ[EVENT_RETENTION_ENV] = self.retention_before

    def _teardown(self) -> None:
        if self.cluster is None:
            return
        try:
            if not self.broken:
                if self.RATES:  # every task runs in the end: a period's starts at a time
                    self.c.drain(interleaved.RATE.period.total_seconds(), rounds=150)
                self.c.drain()
                problems = self.c.problems()
                if self.LIMIT is not None or self.RUN_SLOTS:
                    # Every slot free, no waiter, once everything ended and one sweep after
                    # a lease passed (a crashed or cancelled attempt's slot comes back then).
                    self.c.advance_clock(BIG_JUMP_S)
                    self.c.start_tick(0)
                    self.c.finish(0)
                    for state in self.c.store.limit_states():
                        if state.in_use or state.waiters:
                            problems.append(f"after the end, {state} is not all free")
                if self.EVENT_RETENTION_DAYS == "0":
                    problems.extend(self._events_expired())
                assert not problems, report(self.c, problems)
        finally:
            self.c.close()
            if self.SQLITE:
                self.c.store.close()
                shutil.rmtree(self.folder, ignore_errors=True)

    def _events_expired(self) -> list[str]:
        """Every run ended: a look deletes every event past retention (all of them, at 0
        days) and its marker; the waits were checked against the harness's own copies of the
        events, so one expired too early showed as a problem. (A look of its own: a tick's
        may not come, an armed crash may end the tick before it.)"""
        self.c.advance_clock(1.0)
        self.c.start_expiry(0)  # one page: the machine sends far fewer events than a page
        self.c.finish(0)
        bucket = self.c.instances[0].rt.results_bucket
        left = self.c.blobs.list_uris(f"gs://{bucket}/kumoflow/event")
        return [f"after every run ended, these events stayed: {left}"] if left else []


def report(cluster: Cluster, problems: list[str]) -> str:
    tail = "\n  ".join(cluster.log[-60:])
    return "\n".join(problems) + f"\nlast harness events:\n  {tail}"


def check(machine: type[Interleavings]) -> None:
    run_state_machine_as_test(machine, settings=settings.get_profile(PROFILE))


# --- the features ------------------------------------------------------------------------------
# A failure is shrunk (under "deep") for up to Hypothesis's own 5-minute cap: the timeouts leave
# room for that, so the minimal example is not lost.


class Core(Interleavings):
    FLOWS = CORE


class CoreOutages(Interleavings):
    FLOWS = CORE
    OUTAGES = True


class CoreOperator(Interleavings):
    FLOWS = CORE
    OPERATOR = True


class RunTimeMaps(Interleavings):
    FLOWS = RUN_TIME_MAPS


class RunTimeMapsOperator(Interleavings):
    FLOWS = RUN_TIME_MAPS
    OPERATOR = True


class Gates(Interleavings):
    FLOWS = GATES


class GatesOutages(Interleavings):
    FLOWS = GATES
    OUTAGES = True


class Subflows(Interleavings):
    FLOWS = SUBFLOWS


class MapOverASubflowResult(Interleavings):
    FLOWS = ("il-map-subflow-result",)


class AllowFailure(Interleavings):
    FLOWS = ("il-allow-failure", "il-allow-return")


class Deferred(Interleavings):
    FLOWS = ("il-deferred",)


class Jobs(Interleavings):
    FLOWS = ("il-job", "il-chain")
    JOBS = True


class Waits(Interleavings):
    FLOWS = WAITS
    WAITS = True
    EVENT_RETENTION_DAYS = "0"  # events expire as soon as no live run can take them


# State hooks: run at least once per committed end (crashes after commit, duplicates, a
# resume or cancel racing the hooks), never for an end that was not committed.
class StateHooks(Interleavings):
    FLOWS = ("il-hooked",)


class StateHooksFaults(StateHooks):
    OUTAGES = True
    OPERATOR = True


# Timers fired by their own pushes (Cloud Tasks) beside the ticks: retry delays, the deferred
# checks' polls and the rechecks, each pushed early, late, twice or never.
class TimerPushes(Interleavings):
    FLOWS = (*CORE, "il-deferred")
    PUSHES = True


class TimerPushesFaults(TimerPushes):
    OUTAGES = True
    OPERATOR = True


# Every construct also under every fault at once: publishes failing after their commits and a
# bus down for an hour of virtual time, beside the operator's cancel and resume at any step.
class RunTimeMapsFaults(RunTimeMaps):
    OUTAGES = True
    OPERATOR = True


class GatesFaults(Gates):
    OUTAGES = True
    OPERATOR = True


class SubflowsFaults(Subflows):
    OUTAGES = True
    OPERATOR = True


class MapOverASubflowResultFaults(MapOverASubflowResult):
    OUTAGES = True
    OPERATOR = True


class AllowFailureFaults(AllowFailure):
    OUTAGES = True
    OPERATOR = True


class DeferredFaults(Deferred):
    OUTAGES = True
    OPERATOR = True


class Limits(Interleavings):
    """Concurrency limits: slots held, handed on and reclaimed under every fault."""

    FLOWS = ("il-limited-map",)
    LIMIT = 1


class LimitsFaults(Limits):
    OUTAGES = True
    OPERATOR = True
    LIMIT = 2


class KeyedLimits(Interleavings):
    """Keys computed from each attempt's inputs: one limit per key, each key's slots freed
    by the key its attempt recorded (no end calls the key function again)."""

    FLOWS = ("il-keyed-map", "il-limited-map")
    LIMIT = 1


class KeyedLimitsFaults(KeyedLimits):
    OUTAGES = True
    OPERATOR = True


class MaxActiveRuns(Interleavings):
    """@flow(max_active_runs=1): one run at a time, the others PENDING in line, each started
    when one ends (success, failure, cancel), none left waiting; a resume takes a slot too."""

    FLOWS = ("il-one-at-a-time", "il-chain")
    RUN_SLOTS = True


class MaxActiveRunsFaults(MaxActiveRuns):
    OUTAGES = True
    OPERATOR = True


class Rates(Interleavings):
    """Rate limits: never more starts in a window than the rate, every task runs in the end;
    one task takes a concurrency slot of a limit of 1 after its permit."""

    FLOWS = ("il-rated-map",)
    RATES = True
    LIMIT = 1


class RatesFaults(Rates):
    OUTAGES = True
    OPERATOR = True
    PUSHES = True


class WaitsFaults(Waits):
    OUTAGES = True
    OPERATOR = True
    EVENT_RETENTION_DAYS = None


# The same machines over SQLite (what `kumoflow run` keeps its history in): its etags,
# transactions and due-queries must keep every guarantee the memory store keeps.
class SqliteCore(Core):
    SQLITE = True


class SqliteRunTimeMapsFaults(RunTimeMapsFaults):
    SQLITE = True


class SqliteGatesFaults(GatesFaults):
    SQLITE = True


class SqliteSubflowsFaults(SubflowsFaults):
    SQLITE = True


class SqliteDeferredFaults(DeferredFaults):
    SQLITE = True


class JobsFaults(Jobs):
    OUTAGES = True
    OPERATOR = True


class SqliteJobsFaults(JobsFaults):
    SQLITE = True


class SqliteWaitsFaults(WaitsFaults):
    SQLITE = True


class SqliteLimitsFaults(LimitsFaults):
    SQLITE = True


class SqliteMaxActiveRunsFaults(MaxActiveRunsFaults):
    SQLITE = True


class SqliteRatesFaults(RatesFaults):
    SQLITE = True


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "machine",
    [
        Core,
        CoreOutages,
        CoreOperator,
        RunTimeMaps,
        RunTimeMapsOperator,
        Gates,
        GatesOutages,
        Subflows,
        MapOverASubflowResult,
        AllowFailure,
        Deferred,
        StateHooks,
        StateHooksFaults,
        TimerPushes,
        TimerPushesFaults,
        RunTimeMapsFaults,
        GatesFaults,
        SubflowsFaults,
        MapOverASubflowResultFaults,
        AllowFailureFaults,
        DeferredFaults,
        Waits,
        WaitsFaults,
        SqliteCore,
        SqliteRunTimeMapsFaults,
        SqliteGatesFaults,
        SqliteSubflowsFaults,
        SqliteDeferredFaults,
        Limits,
        LimitsFaults,
        SqliteLimitsFaults,
        KeyedLimits,
        KeyedLimitsFaults,
        MaxActiveRuns,
        MaxActiveRunsFaults,
        SqliteMaxActiveRunsFaults,
        Rates,
        RatesFaults,
        SqliteRatesFaults,
        Jobs,
        JobsFaults,
        SqliteJobsFaults,
        SqliteWaitsFaults,
    ],
    ids=lambda m: m.__name__,
)
def test_interleaved_instances_keep_every_guarantee(machine: type[Interleavings]) -> None:
    check(machine)


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
