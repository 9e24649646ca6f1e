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
the services log, is a violation.
"""

from __future__ import annotations

import functools
import logging
import threading
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator import KumoflowError
from orchestrator.adapters import MemoryBlobStore, MemoryStore, VirtualClock
from orchestrator.contracts import (
    Envelope,
    RunFailed,
    RunRequested,
    RunStatus,
    RunSucceeded,
    TaskFailed,
    TaskRequested,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine import grown
from orchestrator.runtime import (
    LOGGER,
    Runtime,
    advance,
    memory_runtime,
    read_flow_result,
    run_task,
    start_run,
    tick,
)
from tests.flows import interleaved
from tests.flows.interleaved import CURRENT, Caller

WAIT_S = 30.0  # a safety net only: a handler that neither parks nor ends in this long is a bug
BIG_JUMP_S = 7200.0  # past every lease, retry delay and abandoned-outbox threshold
STEP_LIMIT = 2000  # store calls one handler may make before it counts as looping
DRAIN_ROUNDS = 12
DRAIN_MESSAGES = 400


class Crash(BaseException):
    """The instance died: at a publish, or before a store call (BaseException: no handler code
    catches it, as none runs after a real crash)."""


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
    kind: str  # "start" | "task" | "event"
    run_id: str
    payload: RunRequested | TaskRequested | TaskSucceeded | TaskFailed
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
    handling: Message | None = None  # None while idle or running a tick


@dataclass(frozen=True)
class Execution:
    instance: int
    name: str  # the task's failure name (tests.flows.interleaved)


@dataclass
class Cluster:
    k: int
    store: MemoryStore = field(default_factory=MemoryStore)
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
    log: list[str] = field(default_factory=list)
    _seq: int = 0

    def __post_init__(self) -> None:
        # Errors the services catch and log (a sweeper item that failed, a lease expiry that
        # raised) are failures too: they would otherwise hide behind a retry.
        self._errors = _Errors(self.violations)
        LOGGER.addHandler(self._errors)
        functions: dict[str, Callable[..., Any]] = {}
        for f in interleaved.FLOWS.values():
            self.store.put_flow(f.spec)
            functions.update(f.functions())
        for i in range(self.k):
            gate = Gate(f"i{i}")
            bus = PoolBus(self, i)
            rt = memory_runtime(
                clock=self.clock,
                functions=functions,
                store=SteppedStore(self.store, gate),  # type: ignore[arg-type]
                blobs=self.blobs,
                bus=bus,  # type: ignore[arg-type]
            )
            rt.worker_id = f"worker-{i}"
            self.instances.append(Instance(i, rt, gate, bus))

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
            self._add("task", data.run_id, data, event.id)
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
            if status not in allowed:
                self.violations.append(f"{event.id} published while the run is {status}")
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
        inst.handling = msg
        self.log.append(f"i{index} <- {msg}")
        rt = inst.rt
        payload = msg.payload
        if isinstance(payload, RunRequested):
            fn: Callable[[], Any] = functools.partial(start_run, rt, payload, run_id=msg.run_id)
        elif isinstance(payload, TaskRequested):
            fn = functools.partial(self._work, inst, payload)
        else:
            fn = functools.partial(advance, rt, msg.run_id, payload)
        inst.gate.start(fn)
        self._settle(inst)

    def start_tick(self, index: int) -> None:
        inst = self.instances[index]
        inst.handling = None
        self.log.append(f"i{index} tick at {self.clock.now():%H:%M:%S}")
        inst.gate.start(functools.partial(tick, inst.rt))
        self._settle(inst)

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

    def _settle(self, inst: Instance) -> None:
        if not inst.gate.done:
            return
        ok, value = inst.gate.collect()
        msg, inst.handling = inst.handling, None
        what = str(msg) if msg else "tick"
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
        return (
            not self.pool
            and not self.busy()
            and all(self._status(r).terminal and self.finished[r] for r in self.runs)
        )

    def _status(self, run_id: str) -> RunStatus:
        snap = self.store.load(run_id)
        return snap.run.status if snap else RunStatus.PENDING

    def drain(self) -> None:
        """Run everything in flight to its end, deliver every pooled message (redelivering
        unacknowledged ones) and tick with the clock far ahead, until settled or a bound."""
        for _ in range(DRAIN_ROUNDS):
            for index in self.busy():
                self.finish(index)
            for n in range(DRAIN_MESSAGES):
                pending = self.deliverable()
                if not pending:
                    break
                self.deliver(n % self.k, pending[0])
                self.finish(n % self.k)
            if self.settled():
                return
            self.advance_clock(BIG_JUMP_S)
            self.start_tick(0)
            self.finish(0)

    def problems(self) -> list[str]:
        """Everything wrong once drained: the guarantees of DESIGN.md, run by run."""
        out = list(self.violations)
        if self.pool:
            out.append(f"never acknowledged: {', '.join(map(str, self.pool.values()))}")
        out.extend(f"dead letter: {letter}" for letter in self.store.list())
        rt = self.instances[0].rt
        for run_id, (flow, params) in self.runs.items():
            out.extend(self._run_problems(rt, run_id, flow, params))
        return out

    def _run_problems(
        self, rt: Runtime, run_id: str, flow: str, params: dict[str, Any]
    ) -> list[str]:
        snap = self.store.load(run_id)
        if snap is None:
            return [f"{run_id}: never created"]
        run, out = snap.run, []
        tasks = {k: t.status.value for k, t in snap.tasks.items()}
        label = f"{run_id} ({flow} {params})"
        succeeds, value = interleaved.expected(flow, params)
        # A lease that ran out fails its attempt, which may use up the task's retries.
        leased = any(r == run_id for r, _ in self.expired)
        static = rt.plan(run.flow_version, run.params)
        # Every task the run made, run-time maps' children included.
        plan = grown(static, snap.tasks)
        if not run.status.terminal:
            return [f"{label} stayed {run.status.value}: tasks {tasks}"]
        if run.status is RunStatus.SUCCEEDED and succeeds:
            got = read_flow_result(rt, plan, run)
            if got != value:
                out.append(f"{label} returned {got!r}, expected {value!r}")
        elif run.status is RunStatus.FAILED and not succeeds:
            planned = run.error is not None and run.error.type.endswith("PlannedFailure")
            if not planned and not leased:
                out.append(f"{label} failed with {run.error}, not a planned failure")
        elif not (leased and run.status is RunStatus.FAILED):
            out.append(f"{label} ended {run.status.value}: {run.error}")
        ids = {e.id for e in self.finished[run_id]}
        if len(ids) != 1:
            out.append(f"{label}: run finished events {sorted(ids)}, expected exactly one id")
        for e in self.finished[run_id]:
            kind = RunSucceeded if run.status is RunStatus.SUCCEEDED else RunFailed
            if not isinstance(e.data, kind):
                out.append(f"{label} is {run.status.value} but published {type(e.data).__name__}")
            elif isinstance(e.data, RunSucceeded) and e.data.result_uri != run.result_uri:
                out.append(f"{label}: run.succeeded names {e.data.result_uri}, not the run's")
        for key in plan.tasks:
            task = snap.tasks.get(key)
            if task is None or not task.status.terminal:
                out.append(f"{label}: task {key} left {task.status.value if task else 'unmade'}")
                continue
            if key in plan.dynamic:
                if task.attempts or (task.status is TaskStatus.SUCCEEDED and task.width is None):
                    out.append(f"{label}: run-time map {key} ran, or grew without a width")
                continue  # a run-time map never runs: its children do
            out.extend(self._task_problems(label, run_id, key, task.status, task.attempt, params))
        return out

    def _task_problems(
        self,
        label: str,
        run_id: str,
        key: str,
        status: TaskStatus,
        attempt: int,
        params: dict[str, Any],
    ) -> list[str]:
        runs = {a: execs for (r, k, a), execs in self.executions.items() if (r, k) == (run_id, key)}
        if status is TaskStatus.SKIPPED:
            return [f"{label}: skipped task {key} ran"] if runs else []
        if status not in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
            return []  # cancelled
        if not runs or (status is TaskStatus.SUCCEEDED and attempt not in runs):
            return [f"{label}: task {key} {status.value} at attempt {attempt}, which never ran"]
        name = next(iter(runs.values()))[0].name
        fails = params["fails"].get(name, 0)
        want = fails + 1 if status is TaskStatus.SUCCEEDED else interleaved.RETRIES + 1
        if (run_id, key) in self.expired:  # a lease ran out: that attempt failed, maybe a retry
            want = len(runs) if len(runs) <= interleaved.RETRIES + 1 else want
        if len(runs) == want:
            return []
        return [
            f"{label}: task {key} ({name}, {fails} planned failures) ended {status.value} "
            f"after running attempts {sorted(runs)}; expected {want}"
        ]
