"""A cluster of simulated function instances over one shared store, stepped one store call at a
time: the harness behind tests/runtime/test_interleavings.py.

Each instance is a Runtime (public `memory_runtime`) whose store is wrapped by `SteppedStore`: a
generic proxy that, in the instance's handler thread, parks BEFORE every store method call until
the harness lets it go. Only one thread ever runs at a time (the harness waits until a handler
has parked again or finished), so an interleaving is exactly the sequence of harness choices:
handlers read before others' commits and commit in any order.

The bus of every instance is a `PoolBus`: a publish adds a message to a pool of unacknowledged
messages instead of calling a subscriber. A message is acknowledged when a handler for it returns
normally; a handler that raises (a simulated crash, or a retryable error) leaves it in the pool
for redelivery, as a non-2xx push response does with Pub/Sub. Any other exception, and any error
the services log (but those an injected bus outage explains), is a violation.

Beside messages, the harness injects: a bus outage (the next n publishes, of any instance, fail
with a retryable error), a crash at the runtime's own "after-commit" fault point, and the
operator's `runs cancel` / `runs retry` run as handlers of their own (stepped like the others).
It records, per run, every run-end announcement with the flow attempt it closes, and checks
each start of user code against the store: the run still RUNNING, the attempt still current.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import threading
import traceback
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from orchestrator import KumoflowError, NotFoundError, TransientError
from orchestrator.adapters import (
    MemoryBlobStore,
    MemoryJobs,
    MemoryStore,
    MemoryTimerQueue,
    SqliteStore,
    VirtualClock,
)
from orchestrator.contracts import (
    DeadLetter,
    Envelope,
    HooksRequested,
    OutboxEntry,
    RunFailed,
    RunRequested,
    RunStatus,
    RunSucceeded,
    TaskFailed,
    TaskRequested,
    TaskRun,
    TaskStatus,
    TaskSucceeded,
    TimerDue,
)
from orchestrator.engine import CancelRun, ResumeRun, grown
from orchestrator.ports import Snapshot
from orchestrator.runtime import (
    CHOOSE,
    LOGGER,
    SELECT,
    ArmedState,
    Fired,
    InProcessRunner,
    RunOutcome,
    Runtime,
    advance,
    expire_events,
    fire_timer,
    memory_runtime,
    read_flow_result,
    run_hooks,
    run_job_attempt,
    run_task,
    start_run,
    tick,
)
from orchestrator.waits import (
    InputRefused,
    NotWaiting,
    Resumed,
    WaitEvent,
    input_uri,
    matches,
    resume,
    send_event,
    source_key,
)
from tests.flows import interleaved
from tests.flows.interleaved import CURRENT, HOOKED, Caller

WAIT_S = 30.0  # a safety net only: a handler that neither parks nor ends in this long is a bug
BIG_JUMP_S = 7200.0  # past every lease, retry delay and abandoned-outbox threshold
STEP_LIMIT = 2000  # store calls one handler may make before it counts as looping
DRAIN_ROUNDS = 12
DRAIN_MESSAGES = 400


# The hook state each status is for (what orchestrator.runtime calls its hooks with).
HOOK_STATE = {"SUCCEEDED": "Completed", "FAILED": "Failed", "CANCELLED": "Cancelled"}
# A claimed attempt's task: RUNNING, or RETRYING while a retry's attempt runs.
CLAIMED = (TaskStatus.RUNNING, TaskStatus.RETRYING)
FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: fn for f in interleaved.FLOWS.values() for name, fn in f.functions().items()
}


class Crash(BaseException):
    """The instance died: at a publish, or before a store call (BaseException: no handler code
    catches it, as none runs after a real crash)."""


class Outage(TransientError):
    """The bus is unavailable (injected): retryable, as the Pub/Sub adapter's errors are."""


class Abandoned(BaseException):
    """The harness stops a parked handler (teardown after a failure)."""


def _signal() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


class Gate:
    """Turn-taking between one instance's handler thread and the harness (two locks)."""

    def __init__(self, name: str) -> None:
        self.name = name
        # Binary signals, each taken (locked) until the other side gives it: plain locks are
        # several times cheaper than Semaphores, and the two threads strictly alternate.
        self._go = _signal()
        self._parked = _signal()
        self._ident: int | None = None
        self._thread: threading.Thread | None = None
        self._abandon = False
        self._kill = False
        self.next_call: str | None = None  # the store method the handler waits to call
        self.outcome: tuple[bool, Any] | None = None  # (returned normally, value or exception)
        self.calls = 0

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def before(self, method: str) -> None:
        """Called by the proxy before each store call; parks only the handler's own thread."""
        if threading.get_ident() != self._ident:
            return
        self.next_call = method
        self._parked.release()
        if not self._go.acquire(timeout=WAIT_S):
            raise Abandoned(f"{self.name}: never released before {method}")
        self.next_call = None
        if self._abandon:
            raise Abandoned(f"{self.name}: abandoned before {method}")
        if self._kill:
            raise Crash(f"{self.name}: killed before {method}")
        self.calls += 1

    def start(self, fn: Callable[[], Any]) -> None:
        """Run `fn` in a new thread until its first store call (or its end)."""
        assert self._thread is None, f"{self.name} is busy"
        self.outcome, self._abandon, self._kill, self.calls = None, False, False, 0

        def body() -> None:
            self._ident = threading.get_ident()
            try:
                out: tuple[bool, Any] = (True, fn())
            except BaseException as e:  # reported to the harness, which decides
                out = (False, e)
            self._ident = None
            self.outcome = out
            self._parked.release()

        self._thread = threading.Thread(target=body, daemon=True, name=f"handler-{self.name}")
        self._thread.start()
        self._wait()

    def step(self) -> None:
        """Let the parked handler make its store call and run on to the next one (or its end)."""
        assert self._thread is not None, f"{self.name} is idle"
        assert self.outcome is None, f"{self.name} has ended"
        self._go.release()
        self._wait()

    def kill(self) -> None:
        """The instance dies now, before the store call it waits to make."""
        self._kill = True
        self.step()

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def collect(self) -> tuple[bool, Any]:
        assert self._thread is not None, f"{self.name} is idle"
        assert self.outcome is not None, f"{self.name} has not ended"
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), f"{self.name}: handler thread did not exit"
        out, self._thread, self.outcome = self.outcome, None, None
        return out

    def abandon(self) -> None:
        if self._thread is None:
            return
        if self.outcome is None:
            self._abandon = True
            self._go.release()
            self._parked.acquire(timeout=WAIT_S)
        self._thread.join(WAIT_S)
        self._thread, self.outcome = None, None

    def _wait(self) -> None:
        if not self._parked.acquire(timeout=WAIT_S):
            raise AssertionError(f"{self.name}: handler neither parked nor ended in {WAIT_S} s")


class _Errors(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(f"logged: {self.format(record)}")


def _not_an_outage(record: logging.LogRecord) -> bool:
    """A sweeper item that failed because the bus was out (injected) is logged, as it should be."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, Outage) and f"{Outage.__name__}: " not in record.getMessage()


def _outage_letter(letter: DeadLetter) -> bool:
    """The sweeper quarantined an item after MAX_FAILURES publishes an injected outage failed
    (the drain ticks once per BIG_JUMP_S, past every backoff, so six failed publishes reach
    it): the design records that dead letter, once, and keeps the item (lost_timers checks)."""
    return letter.source == "sweeper" and f"{Outage.__name__}: " in letter.reason


class SteppedStore:
    """Forwards every attribute to the wrapped store; method calls park at the gate first."""

    def __init__(self, inner: object, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or not callable(attr):
            return attr
        gate = self._gate

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            gate.before(name)
            return attr(*args, **kwargs)

        return call


class PoolBus:
    """An EventBus whose publishes go to the cluster's pool. With `crash_in` = n, the instance
    dies at its publish after n more succeed."""

    def __init__(self, cluster: Cluster, index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.crash_in: int | None = None

    def publish(self, topic: str, event: Envelope) -> None:
        cluster = self.cluster
        if cluster.outage_until is not None and cluster.clock.now() < cluster.outage_until:
            cluster.log.append(f"i{self.index} publish of {event.id} failed: outage")
            raise Outage(f"the bus is unavailable (injected), publishing {event.id}")
        if self.cluster.outage > 0:
            self.cluster.outage -= 1
            self.cluster.log.append(f"i{self.index} publish of {event.id} failed: outage")
            raise Outage(f"the bus is unavailable (injected), publishing {event.id}")
        if self.crash_in is not None:
            self.crash_in -= 1
            if self.crash_in < 0:
                self.crash_in = None
                raise Crash(f"instance {self.index} died before publishing {event.id}")
        self.cluster.published(self.index, topic, event)

    def publish_all(self, topic: str, events: Sequence[Envelope]) -> None:
        for event in events:  # a crash part way leaves the ones before it published
            self.publish(topic, event)


@dataclass(frozen=True)
class Message:
    seq: int
    kind: str  # "start" | "task" | "event" | "hooks"
    run_id: str
    payload: RunRequested | TaskRequested | TaskSucceeded | TaskFailed | HooksRequested
    event_id: str

    def __str__(self) -> str:
        what = getattr(self.payload, "key", "")
        attempt = getattr(self.payload, "attempt", "")
        return f"#{self.seq} {self.kind} {self.event_id} ({what} {attempt})"


@dataclass
class Instance:
    index: int
    rt: Runtime
    gate: Gate
    bus: PoolBus
    handling: Message | None = None  # None while idle or running a tick or an operator call
    label: str = ""  # what it runs now, for the log
    fault_armed: bool = False  # dies at the runtime's next "after-commit" fault point
    job: str | None = None  # the job execution it runs (a task's `runtime="job"` attempt)


@dataclass(frozen=True)
class Execution:
    instance: int
    name: str  # the task's failure name (tests.flows.interleaved)


@dataclass
class Cluster:
    k: int
    store: MemoryStore | SqliteStore = field(default_factory=MemoryStore)
    blobs: MemoryBlobStore = field(default_factory=MemoryBlobStore)
    clock: VirtualClock = field(default_factory=VirtualClock)
    instances: list[Instance] = field(default_factory=list)
    pool: dict[int, Message] = field(default_factory=dict)  # unacknowledged, by seq
    history: list[Message] = field(default_factory=list)  # every message ever published
    finished: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    runs: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    executions: dict[tuple[str, str, int], list[Execution]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # (run, task) pairs whose claim's lease the clock ran past: takeover territory
    expired: set[tuple[str, str]] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    # Dead letters a scenario expects (the sweeper recording an item it quarantined).
    expected_letters: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)
    outage: int = 0  # publishes (of any instance) that fail from now on
    outage_until: datetime | None = None  # and every publish until then (virtual time)
    # run -> (flow attempt it closes, the announcement), every run.succeeded/failed published
    announced: dict[str, list[tuple[int, Envelope]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    cancelled: set[str] = field(default_factory=set)  # runs an operator asked to cancel
    requested: set[tuple[str, str, int]] = field(default_factory=set)  # task.requested sent
    # Job executions the workers started: they run when the machine says (run_job), on any
    # instance, more than once, or die unrun.
    jobs: MemoryJobs = field(default_factory=MemoryJobs)
    # run -> the inputs `resume` said it ended a pause with (waits: tests.flows.interleaved)
    resumed: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    # Runs an operator cancelled once a resume had begun (racing it, or after it answered:
    # the answer comes once the node's end is published, not applied), so they may end
    # cancelled although the resume answered.
    given: set[str] = field(default_factory=set)
    cancelled_after_resume: set[str] = field(default_factory=set)
    # Every timer's own push (Cloud Tasks): armed by any instance's commits, delivered by the
    # machine at any time, any number of times (early, late, twice, or never).
    timers: MemoryTimerQueue = field(default_factory=MemoryTimerQueue)
    # Every state hook call: (hook, run, flow attempt, state), as the hooks record them.
    hook_calls: list[tuple[str, str, int, str]] = field(default_factory=list)
    # Every event recorded: the harness's own copy (the sweeper may expire the mailbox's once
    # no live run can take them; an id sent again after that is recorded anew, as documented).
    sent: list[WaitEvent] = field(default_factory=list)
    _seq: int = 0

    def __post_init__(self) -> None:
        # Errors the services catch and log (a sweeper item that failed, a lease expiry that
        # raised) are failures too: they would otherwise hide behind a retry.
        self._errors = _Errors(self.violations)
        self._errors.addFilter(_not_an_outage)
        LOGGER.addHandler(self._errors)
        for f in interleaved.FLOWS.values():
            self.store.put_flow(f.spec)
        for i in range(self.k):
            gate = Gate(f"i{i}")
            bus = PoolBus(self, i)
            rt = memory_runtime(
                clock=self.clock,
                functions=FUNCTIONS,
                store=SteppedStore(self.store, gate),  # type: ignore[arg-type]
                blobs=self.blobs,
                bus=bus,  # type: ignore[arg-type]
            )
            rt = replace(
                rt,
                state=ArmedState(rt.state, self.timers, self.clock),  # arms what it commits
                worker_id=f"worker-{i}",
                fault=functools.partial(self._fault, i),
                jobs=self.jobs,
            )
            self.instances.append(Instance(i, rt, gate, bus))

    def _fault(self, index: int, point: str) -> None:
        inst = self.instances[index]
        if inst.fault_armed:
            inst.fault_armed = False
            self.log.append(f"i{index} dies at {point}")
            raise Crash(f"instance {index} died at {point}")

    def advance_clock(self, seconds: float) -> None:
        """Move time on, noting every claim whose lease this makes run out."""
        self.clock.sleep(seconds)
        now = self.clock.now()
        for run_id in self.runs:
            snap = self.store.load(run_id)
            for key, task in (snap.tasks if snap else {}).items():
                if not task.status.terminal and task.lease_until and task.lease_until <= now:
                    self.expired.add((run_id, key))

    # --- the pool ----------------------------------------------------------------------------

    def request_run(self, run_id: str, flow: str, params: dict[str, Any]) -> None:
        self.runs[run_id] = (flow, params)
        self._add("start", run_id, RunRequested(flow=flow, params=params), f"start/{run_id}")

    def _add(self, kind: str, run_id: str, payload: Any, event_id: str) -> None:
        self._seq += 1
        msg = Message(self._seq, kind, run_id, payload, event_id)
        self.pool[msg.seq] = msg
        self.history.append(msg)

    def published(self, index: int, topic: str, event: Envelope) -> None:
        topics = self.instances[index].rt.topics
        data = event.data
        self.log.append(f"i{index} published {event.id}")
        if topic == topics.tasks and isinstance(data, TaskRequested):
            self.requested.add((data.run_id, data.key, data.attempt))
            self._add("task", data.run_id, data, event.id)
        elif topic == topics.runs and isinstance(data, RunRequested) and data.run_id:
            self._add("start", data.run_id, data, event.id)  # a run handed a run slot
        elif topic == topics.tasks and isinstance(data, HooksRequested):
            self._add("hooks", data.run_id, data, event.id)
        elif topic == topics.events and isinstance(data, TaskSucceeded | TaskFailed):
            self._add("event", data.run_id, data, event.id)
        elif topic == topics.finished and isinstance(data, RunSucceeded | RunFailed):
            self.finished[data.run_id].append(event)
            snap = self.store.load(data.run_id)
            status = snap.run.status if snap else None
            allowed = (
                {RunStatus.SUCCEEDED}
                if isinstance(data, RunSucceeded)
                else {RunStatus.FAILED, RunStatus.CANCELLED}
            )
            if snap is not None and data.attempt < snap.run.attempt:
                # Resumed since it ended: a late announcement of an attempt before.
                self.announced[data.run_id].append((data.attempt, event))
            elif snap is None or status not in allowed or data.attempt != snap.run.attempt:
                self.violations.append(f"{event.id} published while the run is {status}")
            else:
                self.announced[data.run_id].append((data.attempt, event))
        else:
            self.violations.append(f"i{index} published {type(data).__name__} on {topic}")

    def deliverable(self) -> list[Message]:
        inflight = {i.handling.seq for i in self.instances if i.handling is not None}
        return [m for m in self.pool.values() if m.seq not in inflight]

    # --- instances ---------------------------------------------------------------------------

    def free(self) -> list[int]:
        return [i.index for i in self.instances if not i.gate.busy]

    def busy(self) -> list[int]:
        return [i.index for i in self.instances if i.gate.busy]

    def deliver(self, index: int, msg: Message) -> None:
        inst = self.instances[index]
        inst.handling, inst.label = msg, str(msg)
        self.log.append(f"i{index} <- {msg}")
        rt = inst.rt
        payload = msg.payload
        if isinstance(payload, RunRequested):
            fn: Callable[[], Any] = functools.partial(start_run, rt, payload, run_id=msg.run_id)
        elif isinstance(payload, TaskRequested):
            fn = functools.partial(self._work, inst, payload)
        elif isinstance(payload, HooksRequested):
            fn = functools.partial(self._hooks, inst, payload)
        else:
            fn = functools.partial(advance, rt, msg.run_id, payload)
        inst.gate.start(fn)
        self._settle(inst)

    def start_tick(self, index: int) -> None:
        inst = self.instances[index]
        inst.handling, inst.label = None, f"tick at {self.clock.now():%H:%M:%S}"
        self.log.append(f"i{index} {inst.label}")
        inst.gate.start(functools.partial(tick, inst.rt))
        self._settle(inst)

    def start_expiry(self, index: int) -> None:
        """The sweeper's look for wait events past retention (`expire_events`), at any step
        (a tick looks every EVENTS_EVERY only): stepped, so it can die part way."""
        inst = self.instances[index]
        inst.handling, inst.label = None, f"expiry at {self.clock.now():%H:%M:%S}"
        self.log.append(f"i{index} {inst.label}")
        inst.gate.start(functools.partial(expire_events, inst.rt, self.clock.now()))
        self._settle(inst)

    def start_push(self, index: int, push: TimerDue) -> None:
        """A timer's own push (a Cloud Task) reaches the sweeper function on this instance."""
        inst = self.instances[index]
        inst.handling, inst.label = None, f"push {push.run_id}/{push.entry_id}"
        self.log.append(f"i{index} {inst.label} at {self.clock.now():%H:%M:%S}")
        inst.gate.start(functools.partial(self._push, inst, push))
        self._settle(inst)

    def _push(self, inst: Instance, push: TimerDue) -> Fired:
        fired = fire_timer(inst.rt, push)
        self.log.append(f"i{inst.index} push {push.entry_id}: {fired.value}")
        if fired is Fired.EARLY:  # answered non-2xx: Cloud Tasks delivers it again later
            raise TransientError(f"timer {push.entry_id} not due yet")
        return fired

    def start_cancel(self, index: int, run_id: str) -> None:
        """`kumoflow runs cancel` (orchestrator.local.cancel_run) on this instance."""
        inst = self.instances[index]
        inst.handling, inst.label = None, f"cancel {run_id}"
        self.cancelled.add(run_id)
        if run_id in self.given:
            self.cancelled_after_resume.add(run_id)
        self.log.append(f"i{index} {inst.label}")
        inst.gate.start(functools.partial(advance, inst.rt, run_id, CancelRun("machine")))
        self._settle(inst)

    def start_resume(self, index: int, run_id: str, attempt: int) -> None:
        """`kumoflow runs retry` (orchestrator.local.retry_run) of the run as it ended in flow
        attempt `attempt` (a stale one when the operator's view is old: then a no-op)."""
        inst = self.instances[index]
        inst.handling, inst.label = None, f"resume {run_id} from attempt {attempt}"
        self.log.append(f"i{index} {inst.label}")
        inst.gate.start(functools.partial(advance, inst.rt, run_id, ResumeRun(attempt)))
        self._settle(inst)

    def start_job(self, index: int, name: str) -> None:
        """Job execution `name` (its container) runs its entrypoint on this instance."""
        inst = self.instances[index]
        inst.handling, inst.label, inst.job = None, f"job {name}", name
        self.log.append(f"i{index} {inst.label}")
        env = self.jobs.env(name)
        inst.gate.start(functools.partial(self._job, inst, env))
        self._settle(inst)

    def idle_jobs(self) -> list[str]:
        """Executions still running that no instance runs now."""
        busy = {i.job for i in self.instances}
        return [n for n in self.jobs.running() if n not in busy]

    def _job(self, inst: Instance, env: dict[str, str]) -> int:
        caller = Caller(
            env["KUMOFLOW_RUN_ID"],
            env["KUMOFLOW_TASK_KEY"],
            int(env["KUMOFLOW_ATTEMPT"]),
            inst.index,
            self._executed,
        )
        token = CURRENT.set(caller)
        try:
            return run_job_attempt(inst.rt, env)
        finally:
            CURRENT.reset(token)

    def send(self, x: int, n: int) -> None:
        """An event for the runs waiting on x (`send_event`; its id says which: the same n
        again is a duplicate). Written to the mailbox, not through the stepped store."""
        rt = self.instances[0].rt
        event_id, data = f"ev-{x}-{n}", {"x": x, "n": n}
        fresh = send_event(interleaved.EVENTS, data, event_id=event_id, rt=rt)
        if fresh:
            at = self.clock.now()  # what send_event stamps it with (the one clock)
            self.sent.append(
                WaitEvent(source=source_key(interleaved.EVENTS), id=event_id, at=at, data=data)
            )
        self.log.append(f"event x={x} n={n}{'' if fresh else ' (duplicate)'}")

    def start_give(self, index: int, run_id: str, data: Any) -> None:
        """`kumoflow runs resume RUN --input ...` (orchestrator.waits.resume) on this instance;
        refused input and a run not waiting are the operator's answers, not failures."""
        inst = self.instances[index]
        inst.handling, inst.label = None, f"give {run_id} {data}"
        self.given.add(run_id)
        self.log.append(f"i{index} {inst.label}")
        inst.gate.start(functools.partial(self._give, inst.rt, run_id, data))
        self._settle(inst)

    def _give(self, rt: Runtime, run_id: str, data: Any) -> None:
        try:
            done: Resumed = resume(rt, run_id, data)
        except (NotWaiting, InputRefused, NotFoundError) as e:
            self.log.append(f"give {run_id} {data}: {e}")
            return
        self.resumed[run_id].append(done.value)

    def step(self, index: int) -> None:
        inst = self.instances[index]
        if inst.gate.calls >= STEP_LIMIT:
            self.violations.append(f"i{index}: a handler made {STEP_LIMIT} store calls")
            raise AssertionError(self.violations[-1])
        inst.gate.step()
        self._settle(inst)

    def kill(self, index: int) -> None:
        inst = self.instances[index]
        self.log.append(f"i{index} killed before {inst.gate.next_call}")
        inst.gate.kill()
        self._settle(inst)

    def finish(self, index: int) -> None:
        while self.instances[index].gate.busy:
            self.step(index)

    def _work(self, inst: Instance, req: TaskRequested) -> Any:
        token = CURRENT.set(Caller(req.run_id, req.key, req.attempt, inst.index, self._executed))
        try:
            return run_task(inst.rt, req)
        finally:
            CURRENT.reset(token)

    def _hooks(self, inst: Instance, req: HooksRequested) -> Any:
        token = HOOKED.set(self._hook_ran)
        try:
            return run_hooks(inst.rt, req)
        finally:
            HOOKED.reset(token)

    def _hook_ran(self, who: str, run_id: str, attempt: int, state: str) -> None:
        """A state hook was called: for an end the store committed (read unstepped), never
        for a state a run or task did not reach. A flow hook names its flow attempt; a task
        hook its task's attempt, which must have ended in that state and been final then (no
        retry of it in its flow attempt: a failure that is retried runs no failure hook)."""
        self.hook_calls.append((who, run_id, attempt, state))
        self.log.append(f"hook {who} of {run_id} attempt {attempt}: {state}")
        if who != "flow":
            self.violations.extend(self._task_hook_problems(who, run_id, attempt, state))
            return
        snap = self.store.load(run_id, [])
        if snap is None or attempt > snap.run.attempt:
            self.violations.append(f"hook {who} ran for {run_id} attempt {attempt}: not ended")
            return
        if attempt < snap.run.attempt:  # resumed since: only a failed or cancelled end is
            if state not in ("Failed", "Cancelled"):
                self.violations.append(f"hook {who}: {state} of resumed attempt {attempt}")
            return
        status = snap.run.status.value
        if HOOK_STATE.get(status) != state:
            self.violations.append(
                f"hook {who} of {run_id} attempt {attempt} ran for {state} while it is {status}"
            )

    def _task_hook_problems(self, who: str, run_id: str, number: int, state: str) -> list[str]:
        key = who.removeprefix("task:")
        snap = self.store.load(run_id, [key])
        task = snap.tasks.get(key) if snap is not None else None
        attempts = {a.number: a for a in task.attempts} if task is not None else {}
        ended = attempts.get(number)
        if task is None or ended is None:
            return [f"hook {who} of {run_id} ran for {state} of attempt {number}: never queued"]
        if state == "Cancelled":  # a cancel ends the task, not its attempt's record
            resumed = any(a.flow_attempt > ended.flow_attempt for a in attempts.values())
            cancelled = task.status is TaskStatus.CANCELLED and task.attempt == number
            if ended.status.terminal or not (cancelled or resumed):
                return [f"hook {who} of {run_id}: Cancelled of attempt {number}, {task.status}"]
            return []
        if HOOK_STATE.get(ended.status.value) != state:
            got = ended.status.value
            return [f"hook {who} of {run_id} ran for {state} of attempt {number}: it is {got}"]
        retried = [
            a.number
            for a in attempts.values()
            if a.number > number and a.flow_attempt == ended.flow_attempt
        ]
        if retried:
            return [f"hook {who} of {run_id} ran for attempt {number}, retried as {retried}"]
        return []

    def hook_problems(self, run_id: str) -> list[str]:
        """Once drained: every announced end of a hooked flow ran its flow hook (at least
        once), and every final end of its hooked task (each attempt that succeeded, or failed
        with no retry after it in its flow attempt; its cancel) ran the task's hook for it."""
        snap = self.store.load(run_id)
        if snap is None or self.runs.get(run_id, ("",))[0] != "il-hooked":
            return []
        called = set(self.hook_calls)
        out = []
        for attempt, event in self.announced[run_id]:
            ended = "Completed" if isinstance(event.data, RunSucceeded) else None
            states = {ended} if ended else {"Failed", "Cancelled"}
            if not any(("flow", run_id, attempt, s) in called for s in states):
                out.append(f"{run_id}: the end of attempt {attempt} ran no flow hook")
        base = snap.tasks.get("base")
        attempts = base.attempts if base is not None else ()
        for a in attempts:
            want = HOOK_STATE.get(a.status.value)
            final = not any(
                b.number > a.number and b.flow_attempt == a.flow_attempt for b in attempts
            )
            if (
                want in ("Completed", "Failed")
                and final
                and ("task:base", run_id, a.number, want) not in called
            ):
                out.append(f"{run_id}: task base attempt {a.number} ended {want}, no hook ran")
        # A cancel ends the task (its attempt's record stays as it was): the last one is seen.
        last = ("task:base", run_id, base.attempt if base else 0, "Cancelled")
        if base and base.status is TaskStatus.CANCELLED and base.attempt and last not in called:
            out.append(f"{run_id}: task base cancelled at attempt {base.attempt}, no hook ran")
        return out

    def _executed(self, caller: Caller, name: str) -> None:
        """User code started (called in the handler thread while the harness waits)."""
        runs = self.executions[(caller.run_id, caller.key, caller.attempt)]
        if runs:  # a takeover is a new attempt: the same attempt never runs twice
            self.violations.append(
                f"{caller.run_id}/{caller.key} attempt {caller.attempt} ran twice: on "
                f"i{runs[0].instance}, then on i{caller.instance}"
            )
        runs.append(Execution(caller.instance, name))
        self.log.append(f"i{caller.instance} ran {caller.key} attempt {caller.attempt}")
        # User code starts only under a live claim: the run RUNNING (no cancel committed, not
        # ended), this attempt the task's current, claimed one. Read from the store, unstepped.
        snap = self.store.load(caller.run_id, [caller.key])
        task = snap.tasks.get(caller.key) if snap else None
        if snap is None or snap.run.status is not RunStatus.RUNNING:
            status = snap.run.status.value if snap else "missing"
            self.violations.append(
                f"{caller.run_id}/{caller.key} attempt {caller.attempt}: user code started "
                f"while the run is {status}"
            )
        elif task is None or task.attempt != caller.attempt or task.status not in CLAIMED:
            now = f"{task.status.value} attempt {task.attempt}" if task else "missing"
            self.violations.append(
                f"{caller.run_id}/{caller.key} attempt {caller.attempt}: user code started "
                f"while the task is {now}"
            )

    def _settle(self, inst: Instance) -> None:
        if not inst.gate.done:
            return
        ok, value = inst.gate.collect()
        msg, inst.handling = inst.handling, None
        what = inst.label
        if inst.job is not None:  # the container exits with the entrypoint's code, or dies
            self.jobs.finish(inst.job, value if ok else 137, "" if ok else f"died: {value!r}")
            inst.job = None
        if ok:
            self.log.append(f"i{inst.index} done {what}")
            if msg is not None:
                self.pool.pop(msg.seq, None)  # acknowledged (a duplicate may have done it)
            return
        self.log.append(f"i{inst.index} raised {type(value).__name__} in {what}")
        if isinstance(value, Crash) or (isinstance(value, KumoflowError) and value.retryable):
            return  # not acknowledged: Pub/Sub redelivers it
        tb = "".join(traceback.format_exception(value))
        self.violations.append(f"i{inst.index} {what} raised {value!r}\n{tb}")

    def close(self) -> None:
        LOGGER.removeHandler(self._errors)
        for inst in self.instances:
            inst.gate.abandon()
            inst.handling = None

    # --- the end -----------------------------------------------------------------------------

    def settled(self) -> bool:
        """Nothing in flight, every run ended and announced, and no effect a crashed handler
        left in an outbox (the sweep adopts it after ABANDONED_AFTER: drain ticks on for it)."""
        return (
            not self.pool
            and not self.busy()
            and not self.jobs.running()
            and all(self._status(r).terminal and self.finished[r] for r in self.runs)
            # Child runs of subflows too: one its parent no longer waits on ends on its own.
            and all(r.status.terminal for r in self.store.list_runs(limit=10_000))
            and not self.abandoned()
        )

    def abandoned(self) -> list[OutboxEntry]:
        """Outbox entries that are not timers: effects committed and not done (yet)."""
        far = self.clock.now() + timedelta(days=365)
        return [e for e in self.store.due(far, limit=100_000) if not e.timer]

    def _status(self, run_id: str) -> RunStatus:
        snap = self.store.load(run_id)
        return snap.run.status if snap else RunStatus.PENDING

    def drain(self, jump: float = BIG_JUMP_S, rounds: int = DRAIN_ROUNDS) -> None:
        """Run everything in flight to its end, deliver every pooled message (redelivering
        unacknowledged ones) and tick with the clock far ahead, until settled or a bound.
        (A rate limit lets a few start per period: its machines drain a period at a time.)"""
        for _ in range(rounds):
            for index in self.busy():
                self.finish(index)
            for n in range(DRAIN_MESSAGES):
                pending = self.deliverable()
                if not pending:
                    break
                self.deliver(n % self.k, pending[0])
                self.finish(n % self.k)
            for name in self.idle_jobs():  # every container gets to run in the end
                self.start_job(0, name)
                self.finish(0)
            if self.settled():
                return
            self.advance_clock(jump)
            self.start_tick(0)
            self.finish(0)

    def problems(self) -> list[str]:
        """Everything wrong once drained: the guarantees of DESIGN.md, run by run."""
        out = list(self.violations)
        if self.pool:
            out.append(f"never acknowledged: {', '.join(map(str, self.pool.values()))}")
        out.extend(
            f"dead letter: {letter}"
            for letter in self.store.list()
            if letter.id not in self.expected_letters and not _outage_letter(letter)
        )
        rt = self.instances[0].rt
        for run_id, (flow, params) in self.runs.items():
            out.extend(self._run_problems(rt, run_id, flow, params))
            out.extend(self.hook_problems(run_id))
        for run in self.store.list_runs(limit=10_000):  # child runs of subflows too
            out.extend(self.unfinished(run.run_id, final=True))
        return out

    def unfinished(self, run_id: str, *, final: bool = False) -> list[str]:
        """An ended run holds no task that is not ended and no live lease; `final` (all
        drained): the run itself ended."""
        snap = self.store.load(run_id)
        if snap is None:
            return []
        if not snap.run.status.terminal:
            return [f"{run_id} stayed {snap.run.status.value}"] if final else []
        return [
            f"{run_id} ended {snap.run.status.value} with task {key} {task.status.value}"
            f"{' leased' if task.lease_until else ''}"
            for key, task in snap.tasks.items()
            if not task.status.terminal
        ]

    def lost_timers(self) -> list[str]:
        """A RUNNING run has its recheck timer; a task waiting out a retry delay, its own (or
        the timer fired: its task.requested was published)."""
        entries: dict[str, list[OutboxEntry]] = defaultdict(list)
        for e in self.store.due(self.clock.now() + timedelta(days=365), limit=100_000):
            entries[e.run_id].append(e)
        out = []
        for run in self.store.list_runs(limit=10_000):
            if run.status is not RunStatus.RUNNING:
                continue
            mine = entries[run.run_id]
            if not any(e.kind == "wake" for e in mine):
                out.append(f"{run.run_id} is RUNNING without a recheck timer")
            snap = self.store.load(run.run_id)
            for key, task in (snap.tasks if snap else {}).items():
                if (
                    task.status is TaskStatus.SCHEDULED
                    and not any(e.key == key and e.timer for e in mine)
                    and (run.run_id, key, task.attempt) not in self.requested
                ):
                    out.append(f"{run.run_id}: {key} waits for a retry that has no timer")
        return out

    def _run_problems(
        self, rt: Runtime, run_id: str, flow: str, params: dict[str, Any]
    ) -> list[str]:
        snap = self.store.load(run_id)
        if snap is None:
            return [f"{run_id}: never created"]
        run, out = snap.run, []
        label = f"{run_id} ({flow} {params})"
        if not run.status.terminal:
            tasks = {k: t.status.value for k, t in snap.tasks.items()}
            return [f"{label} stayed {run.status.value} in attempt {run.attempt}: tasks {tasks}"]
        # What the same flow does in-process, resumed as often as this run was; and the
        # hand-worked expectation, which the reference itself must meet.
        seed, waits = self._wait_problems(rt, label, run_id, flow, snap)
        out.extend(waits)
        seed_json = json.dumps(seed, sort_keys=True)
        ref = reference(flow, json.dumps(params, sort_keys=True), run.attempt - 1, seed_json)
        succeeds, value = interleaved.expected(flow, params, seed)
        if run.attempt == 1 and (ref.status == "SUCCEEDED", ref.value) != (succeeds, value):
            out.append(f"{label}: in-process it ends {ref.status} {ref.value!r}, not {value!r}")
        # A lease that ran out fails its attempt, which may use up the task's retries; an
        # operator's cancel ends the run (or an attempt of it) wherever it was.
        leased = any(r == run_id for r, _ in self.expired)
        exact = not leased and run_id not in self.cancelled
        plan = grown(rt.plan(run.flow_version, run.params), snap.tasks)
        got: Any = None
        if run.status is RunStatus.SUCCEEDED:
            try:
                got = read_flow_result(rt, plan, run)
            except KumoflowError as error:
                out.append(f"{label} SUCCEEDED with no readable result: {error!r}")
        if exact and (run.status.value, got) != (ref.status, ref.value):
            out.append(
                f"{label} ended {run.status.value} {got!r} in attempt {run.attempt}; "
                f"in-process: {ref.status} {ref.value!r}"
            )
        elif not exact and run.status is RunStatus.SUCCEEDED:
            want = self._succeeded_with(run_id, flow, params, snap.tasks, seed)
            if want is not None and (want.status, want.value) != ("SUCCEEDED", got):
                out.append(
                    f"{label} SUCCEEDED {got!r}; in-process, with the tasks that failed here "
                    f"failing for good, it ends {want.status} {want.value!r}"
                )
        elif not exact and run.status is RunStatus.FAILED:
            planned = run.error is not None and run.error.type.endswith(
                ("PlannedFailure", "SubflowFailed", "PauseTimedOut")
            )
            if not planned and not leased:
                out.append(f"{label} failed with {run.error}, not a planned failure")
        elif run.status is RunStatus.CANCELLED and run_id not in self.cancelled:
            out.append(f"{label} ended CANCELLED, which nobody asked for")
        out.extend(self._announcement_problems(label, run_id, run.attempt))
        for e in self.finished[run_id]:
            data = e.data
            if isinstance(data, RunSucceeded) and data.result_uri != run.result_uri:
                out.append(f"{label}: run.succeeded names {data.result_uri}, not the run's")
        for key in plan.tasks:
            task = snap.tasks.get(key)
            if task is None or not task.status.terminal:
                out.append(f"{label}: task {key} left {task.status.value if task else 'unmade'}")
                continue
            if key in plan.dynamic:
                if task.attempts or (task.status is TaskStatus.SUCCEEDED and task.width is None):
                    out.append(f"{label}: run-time map {key} ran, or grew without a width")
                continue  # a run-time map never runs: its children do
            node = plan.tasks[key].node
            if node.task in (CHOOSE, SELECT) or node.subflow is not None or _waits(node.task):
                continue  # no user code of its own
            out.extend(self._task_problems(label, run_id, key, task, ref.starts.get(key), exact))
        return out

    def _wait_problems(
        self, rt: Runtime, label: str, run_id: str, flow: str, snap: Snapshot
    ) -> tuple[Any, list[str]]:
        """What a run's wait was given (its seed for the references), and whether it took it
        exactly once: the first matching event since the run's start, or nothing when none
        came by its deadline; a pause ends with the one input `resume` said it took. A wait
        from its own start never takes an event from before its attempt was claimed (when
        exactly its node began after that is its own: a clock may move while it is claimed)."""
        key = {
            "il-wait-event": "wait-for-event",
            "il-wait-event-late": "wait-for-event",
            "il-pause": "pause",
            "il-sleep": "sleep",
        }.get(flow)
        task = snap.tasks.get(key) if key else None
        if flow == "il-sleep":
            return None, self._sleep_problems(label, task)
        if task is None or task.status is not TaskStatus.SUCCEEDED:
            cancelled = snap.run.status is RunStatus.CANCELLED
            if cancelled and run_id in self.cancelled_after_resume:
                return None, []
            if flow == "il-pause" and self.resumed[run_id]:
                return None, [f"{label}: resumed with {self.resumed[run_id]}, yet not ended by it"]
            return None, []
        plan = rt.plan_of(snap.run)
        taken = json.loads(rt.blobs.get(rt.task_result_uri(plan, run_id, task.key)))
        if flow == "il-pause":
            wrong = [v for v in self.resumed[run_id] if v != taken]
            return taken, [
                f"{label}: the pause took {taken}, resumes said {wrong}"
            ] if wrong else []
        x = snap.run.params["x"]
        since = snap.run.created_at
        last = task.attempts[-1]
        late = flow == "il-wait-event-late"
        if late:  # at or before the wait's own start: its first attempt's claim (a later
            # attempt ends with the result an earlier one stored, if one did)
            since = min((a.started_at for a in task.attempts if a.started_at), default=since)
        deadline = (last.started_at or since) + timedelta(seconds=interleaved.WAIT_TIMEOUT_S)
        mine = [e for e in self.sent if matches({"x": x}, e.data) and e.at >= since]
        if taken is None:
            early = [] if late else [e.id for e in mine if e.at <= deadline]
            return None, [f"{label}: timed out although {early} came in time"] if early else []
        # The first match: none came before it. Events stored at one instant are ordered by
        # their ids' digests, so one stored later at the same instant may sort first: either
        # is the first then.
        shown = [e.model_dump(mode="json") for e in mine]
        at = WaitEvent.model_validate(taken).at
        earlier = [] if late else [e.id for e in mine if e.at < at]
        if taken not in shown or earlier:
            return taken["data"], [f"{label}: took {taken}, not the first match of {shown}"]
        return taken["data"], []

    @staticmethod
    def _sleep_problems(label: str, task: TaskRun | None) -> list[str]:
        """A sleep ends at its time, never before (its end is committed with its completion)."""
        last = task.attempts[-1] if task and task.attempts else None
        if last is None or last.status is not TaskStatus.SUCCEEDED:
            return []
        if last.started_at is None or last.ended_at is None:
            return [f"{label}: the sleep succeeded without a start or an end"]
        slept = (last.ended_at - last.started_at).total_seconds()
        if slept < interleaved.SLEEP_S:
            return [f"{label}: slept {slept} s of {interleaved.SLEEP_S}"]
        return []

    def _succeeded_with(
        self,
        run_id: str,
        flow: str,
        params: dict[str, Any],
        tasks: Mapping[str, TaskRun],
        seed: Any,
    ) -> Reference | None:
        """The reference for a run that succeeded although a lease ran out or a cancel came: the
        flow in-process with exactly the tasks that ended FAILED here failing for good (with
        allow_failure a run succeeds past them, and returns what they leave: not the result
        without failures). None when a task that failed here never ran user code, or shares its
        failure name with one that succeeded (in-process cannot say which)."""
        name_of = {k: e[0].name for (r, k, _), e in self.executions.items() if r == run_id and e}
        failed = [k for k, t in tasks.items() if t.status is TaskStatus.FAILED]
        if any(k not in name_of for k in failed):
            return None
        lost = {name_of[k] for k in failed}
        kept = [k for k, t in tasks.items() if t.status is TaskStatus.SUCCEEDED]
        if any(name_of.get(k) in lost for k in kept):
            return None
        fails = {name: interleaved.RETRIES + 1 for name in sorted(lost)}
        given = json.dumps(seed, sort_keys=True)
        return reference(flow, json.dumps({**params, "fails": fails}, sort_keys=True), 0, given)

    def announcement_problems(self, run_id: str) -> list[str]:
        """No flow attempt announced under two event ids; no event id for two attempts (a
        listener deduping by id would drop the second end)."""
        ids = self._announced_ids(run_id)
        out = [
            f"{run_id}: flow attempt {a} announced as {sorted(found)}"
            for a, found in ids.items()
            if len(found) > 1
        ]
        seen: dict[str, int] = {}
        for a in sorted(ids):
            for event_id in ids[a]:
                if event_id in seen:
                    out.append(
                        f"{run_id}: flow attempts {seen[event_id]} and {a} both announced as "
                        f"{event_id}"
                    )
                seen[event_id] = a
        return out

    def _announced_ids(self, run_id: str) -> dict[int, set[str]]:
        ids: dict[int, set[str]] = defaultdict(set)
        for attempt, e in self.announced[run_id]:
            ids[attempt].add(e.id)
        return ids

    def _announcement_problems(self, label: str, run_id: str, attempts: int) -> list[str]:
        """Each flow attempt that ended (all of them, once drained) was announced."""
        ids = self._announced_ids(run_id)
        missing = [a for a in range(1, attempts + 1) if not ids[a]]
        out = [f"{label}: flow attempts {missing} ended unannounced"] if missing else []
        return out + [f"{label}: {p}" for p in self.announcement_problems(run_id)]

    def _task_problems(
        self, label: str, run_id: str, key: str, task: TaskRun, want: int | None, exact: bool
    ) -> list[str]:
        runs = {a: execs for (r, k, a), execs in self.executions.items() if (r, k) == (run_id, key)}
        status, attempt = task.status, task.attempt
        if status is TaskStatus.SKIPPED:
            return [f"{label}: skipped task {key} ran"] if runs and exact else []
        if status not in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
            return []  # cancelled
        if not runs or (status is TaskStatus.SUCCEEDED and attempt not in runs):
            return [f"{label}: task {key} {status.value} at attempt {attempt}, which never ran"]
        if not exact or want is None or len(runs) == want:
            return []
        return [
            f"{label}: task {key} ended {status.value} after running attempts {sorted(runs)}; "
            f"in-process it ran {want} times"
        ]


def _waits(task: str) -> bool:
    """A node of orchestrator.waits: kumoflow's own code, no user code to count."""
    return task.startswith("orchestrator.waits.")


@dataclass(frozen=True)
class Reference:
    status: str  # how the run ends in-process
    value: Any  # its result, when it succeeds
    ok_value: Any  # its result with no planned failures
    starts: dict[str, int]  # per task key: attempts that started user code


def _in_process(flow: str, params: dict[str, Any], resumes: int, seed: Any) -> RunOutcome:
    with InProcessRunner(clock=VirtualClock(), functions=FUNCTIONS, max_workers=1) as runner:
        for f in interleaved.FLOWS.values():
            runner.store.put_flow(f.spec)
        if seed is not None and flow.startswith("il-wait-event"):  # since the run's start
            send_event(
                interleaved.EVENTS, {"x": params["x"], **seed}, event_id="seed", rt=runner.rt
            )
            # A wait from its own start, given the seed, ends as one from the run's start does.
            flow = "il-wait-event"
        if seed is not None and flow == "il-pause":  # given before it paused, whichever attempt
            rt = runner.rt
            for flow_attempt, attempt in itertools.product((1, 2, 3), (1, 2)):
                uri = input_uri(rt.results_bucket, "reference", "pause", flow_attempt, attempt)
                rt.blobs.put(uri, json.dumps(seed).encode(), "application/json")
        outcome = runner.run(interleaved.FLOWS[flow].spec, params, run_id="reference")
        for _ in range(resumes):
            if outcome.run.status is RunStatus.SUCCEEDED:
                break
            outcome = runner.resume("reference")
        return outcome


@functools.lru_cache(maxsize=1024)
def reference(flow: str, params_json: str, resumes: int, seed_json: str = "null") -> Reference:
    """The same run in-process (orchestrator.runtime.InProcessRunner, its own memory store),
    resumed `resumes` times while it does not succeed. A reference that itself breaks (raises)
    stands as a status no cluster run can match."""
    params, seed = json.loads(params_json), json.loads(seed_json)
    try:
        outcome = _in_process(flow, params, resumes, seed)
        ok = _in_process(flow, {**params, "fails": {}}, 0, seed)
    except Exception as error:
        return Reference(f"in-process run raised {error!r}", None, None, {})
    starts = {
        key: sum(1 for a in t.attempts if a.started_at is not None)
        for key, t in outcome.tasks.items()
    }
    return Reference(outcome.run.status.value, outcome.value, ok.value, starts)
