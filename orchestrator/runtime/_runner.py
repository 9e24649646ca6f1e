"""In-process runs: the cloud's services wired to in-memory adapters and a thread pool."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from orchestrator.adapters import MemoryBlobStore, MemoryBus, MemoryJobs, MemoryStore
from orchestrator.contracts import (
    Envelope,
    FlowSpec,
    HooksRequested,
    OutboxEntry,
    OutboxKind,
    Run,
    RunFailed,
    RunRequested,
    RunStatus,
    RunSucceeded,
    TaskFailed,
    TaskRequested,
    TaskRun,
    TaskSucceeded,
)
from orchestrator.engine import ResumeRun
from orchestrator.errors import FlowRunError, NotFoundError, TaskRunError, TransientError
from orchestrator.ports import BlobStore, Clock, RecordStore, TimerStore
from orchestrator.runtime._build import memory_runtime
from orchestrator.runtime._params import bind_params
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.control import advance, flow_result, start_run
from orchestrator.runtime.sweeper import tick
from orchestrator.runtime.worker import run_hooks, run_job_attempt, run_task

DEFAULT_WORKERS = 8
# How often an idle runner looks at its timers again, and whether another process (on a
# shared store) ended its run.
WATCH_S = 0.5
# Result caches outlive a run: in-process, they last as long as the process.
PROCESS_CACHE = MemoryBlobStore()
Progress = Callable[[Run, dict[str, TaskRun]], None]
R = TypeVar("R", OutboxEntry, TaskRun)


@dataclass
class RunOutcome:
    run: Run
    tasks: dict[str, TaskRun]
    value: Any = None
    exception: BaseException | None = field(default=None, repr=False)

    def value_or_raise(self) -> Any:
        if self.run.status is RunStatus.SUCCEEDED:
            return self.value
        error = self.run.error
        where = f"task {error.task!r}" if error and error.task else f"flow {self.run.flow!r}"
        detail = f"{error.type}: {error.message}" if error else self.run.status.value
        raise FlowRunError(
            f"flow run {self.run.run_id} ({self.run.flow}) {self.run.status.value.lower()}: "
            f"{where} failed with {detail}",
            run_id=self.run.run_id,
            task=error.task if error else None,
        ) from self.exception


class InProcessRunner:
    """Drives one run through the ports: orchestrator steps on this thread, tasks on a pool."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_workers: int = DEFAULT_WORKERS,
        functions: dict[str, Callable[..., Any]] | None = None,
        store: RecordStore | None = None,
        blobs: BlobStore | None = None,
        shared: bool = False,
    ) -> None:
        # A store and blobs of its own, or shared with other runners (a history of runs):
        # in this process (MemoryStore), or with other processes too (`shared`: SqliteStore).
        self.store: RecordStore = store if store is not None else MemoryStore()
        self.blobs: BlobStore = blobs if blobs is not None else MemoryBlobStore()
        self._shared = shared
        # A shared store holds other processes' runs: this runner sweeps the timers of the
        # runs it drives only (each process is the only worker of its runs).
        self._owned = OwnedTimers(self.store)
        self.bus = MemoryBus()
        self.rt = replace(
            memory_runtime(
                clock=clock, functions=functions, store=self.store, blobs=self.blobs, bus=self.bus
            ),
            exceptions={},
            renew_leases=False,  # this process is the only worker: nobody takes over
            lease_seconds=24 * 3600,
            cache_store=PROCESS_CACHE,
        )
        # A job-run task's execution runs on this runner's runtime, as its own worker would.
        self.rt = replace(self.rt, jobs=MemoryJobs(lambda env: run_job_attempt(self.rt, env)))
        if shared:
            self.rt = replace(self.rt, timers=self._owned)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kumoflow")
        self._inbox: queue.SimpleQueue[Envelope] = queue.SimpleQueue()
        # Attempts a worker holds: a set, not a count, because an attempt that parked (a
        # deferred task) frees its worker first and completes later, from the sweep.
        self._inflight: set[tuple[str, str, int]] = set()
        self._crashed: list[BaseException] = []
        self.bus.subscribe(self.rt.topics.tasks, self._on_task_request)
        self.bus.subscribe(self.rt.topics.events, self._inbox.put)
        self.bus.subscribe(self.rt.topics.finished, self._inbox.put)
        self.bus.subscribe(self.rt.topics.runs, self._inbox.put)  # a run handed a run slot

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> InProcessRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_task_request(self, event: Envelope) -> None:
        if isinstance(event.data, HooksRequested):
            # Run's end committed and announced: its hooks run here, before the run's end
            # reaches the caller (a process may exit right after).
            run_hooks(self.rt, event.data)
            return
        assert isinstance(event.data, TaskRequested)
        self._owned.runs.add(event.data.run_id)  # dispatched here: this process drives it
        self._inflight.add((event.data.run_id, event.data.key, event.data.attempt))
        self._pool.submit(self._work, event.data)

    def _work(self, req: TaskRequested) -> None:
        try:
            outcome = run_task(self.rt, req)
        except BaseException as e:  # a bug of ours: surface it in the caller, never hang
            self._crashed.append(e)
            outcome = None
        if outcome is None:
            self._inbox.put(_noop(self.rt, req))

    def run(
        self,
        spec: FlowSpec,
        params: dict[str, Any],
        *,
        run_id: str | None = None,
        progress: Progress | None = None,
        priority: int = 0,
    ) -> RunOutcome:
        params = bind_params(spec.params, params, flow=spec.name)  # clear errors, before storing
        self.store.put_flow(spec)
        run_id = run_id or uuid.uuid4().hex[:16]
        self._owned.runs.add(run_id)
        req = RunRequested(flow=spec.name, params=params, priority=priority)
        _run, _ = start_run(self.rt, req, run_id=run_id)
        return self._drive(run_id, progress)

    def resume(self, run_id: str, *, progress: Progress | None = None) -> RunOutcome:
        """Resume a FAILED or CANCELLED run of this runner's store (see ResumeRun) to its end."""
        snap = self.store.load(run_id, [])
        if snap is None:
            raise NotFoundError(f"no run {run_id!r}")
        self._owned.runs.add(run_id)
        if not advance(self.rt, run_id, ResumeRun(snap.run.attempt)):
            return self._outcome(run_id)
        return self._drive(run_id, progress)

    def drive_in_background(self, poll: float = 0.2) -> Callable[[], None]:
        """Keep advancing every run of this runner's store on a thread, as the functions do on
        the stack: a run retried or cancelled from the dashboard (`kumoflow run --ui`) goes on
        to its end. Returns the function that stops it."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                event = self._next_event(poll)  # at most `poll` s, so a stop is seen soon
                if event is not None:
                    self._handle(event, None, None)

        thread = threading.Thread(target=loop, name="kumoflow-driver", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join(poll + 5)

        return halt

    def _drive(self, run_id: str, progress: Progress | None) -> RunOutcome:
        self._report(run_id, progress)
        while True:
            event = self._next_event(WATCH_S if self._shared else None)
            if event is not None and self._handle(event, run_id, progress):
                break
            if event is None and self._shared and self._ended_elsewhere(run_id):
                self._report(run_id, progress)
                break
        return self._outcome(run_id)

    def _ended_elsewhere(self, run_id: str) -> bool:
        """The run ended and its finish is done, by another process (this one's finish
        arrives as an event): what its workers still do here completes nothing."""
        snap = self.store.load(run_id)
        return (
            snap is not None
            and snap.run.status.terminal
            and not any(e.kind is OutboxKind.FINISH for e in snap.outbox)
        )

    def _handle(self, event: Envelope, run_id: str | None, progress: Progress | None) -> bool:
        """Apply one event (any run's); True when it is the end of run `run_id`."""
        if event.type == _NOOP:
            assert isinstance(event.data, TaskRequested)
            self._inflight.discard((event.data.run_id, event.data.key, event.data.attempt))
            if self._crashed:
                raise self._crashed[0]
            return False
        data = event.data
        if isinstance(data, RunSucceeded | RunFailed):
            return data.run_id == run_id
        if isinstance(data, RunRequested) and data.run_id is not None:
            start_run(self.rt, data, run_id=data.run_id)  # its start, once it has a run slot
            return False
        if isinstance(data, TaskSucceeded | TaskFailed):
            try:
                advance(self.rt, data.run_id, data)
            except TransientError:  # as Pub/Sub would: deliver it again (a paused growth)
                self._inbox.put(event)
                return False
            self._inflight.discard((data.run_id, data.key, data.attempt))
            if run_id is not None:
                self._report(run_id, progress)
        return False

    def _next_event(self, poll: float | None = None) -> Envelope | None:
        """The next event, or None after firing due timers; `poll`: never block longer."""
        clock = self.rt.clock
        due = self.rt.timers.next_due()
        if due is None or (self._inflight and not clock.realtime):
            return self._get(poll)
        wait = (due - clock.now()).total_seconds()
        if wait > 0:
            if clock.realtime:
                # Never sleep past a look at the timers again: a worker thread may commit an
                # earlier one meanwhile (a rate's wake-up), which no event announces.
                return self._get(min(wait, WATCH_S if poll is None else poll))
            if not self._inbox.empty():
                return self._inbox.get()
            clock.sleep(wait)
        tick(self.rt)
        return None

    def _get(self, timeout: float | None) -> Envelope | None:
        try:
            return self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def _report(self, run_id: str, progress: Progress | None) -> None:
        if progress is not None:
            snap = self.store.load(run_id)
            if snap is not None:
                progress(snap.run, snap.tasks)

    def _outcome(self, run_id: str) -> RunOutcome:
        snap = self.store.load(run_id)
        assert snap is not None
        outcome = RunOutcome(run=snap.run, tasks=snap.tasks)
        if snap.run.status is RunStatus.SUCCEEDED:
            plan = self.rt.plan_of(snap.run)
            outcome.value = flow_result(self.rt, plan, snap.run)
        elif snap.run.error and snap.run.error.task:
            key = snap.run.error.task
            task = snap.tasks.get(key)
            exceptions = self.rt.exceptions or {}
            outcome.exception = exceptions.get((run_id, key, task.attempt if task else 0)) or (
                TaskRunError(snap.run.error.type, snap.run.error.message, snap.run.error.traceback)
            )
        return outcome


class OwnedTimers:
    """The TimerStore of a store shared by several processes' runners, as one runner sees it:
    the timers, leases and dispatches of the runs it drives (`runs`), none of another's. A
    process sweeping others' runs would run their tasks in its own pool and could exit in the
    middle of them; and a stale run (its process killed) would wake every runner for ever."""

    PAGE = 200
    FOREVER = datetime.max.replace(tzinfo=UTC)

    def __init__(self, inner: TimerStore) -> None:
        self._inner = inner
        self.runs: set[str] = set()

    def due(
        self, now: datetime, limit: int = 100, after: OutboxEntry | None = None
    ) -> list[OutboxEntry]:
        return self._mine(lambda cursor: self._inner.due(now, self.PAGE, cursor), limit, after)

    def next_due(self) -> datetime | None:
        found = self.due(self.FOREVER, 1)
        return found[0].due_at if found else None

    def entry(self, run_id: str, entry_id: str) -> OutboxEntry | None:
        return self._inner.entry(run_id, entry_id) if run_id in self.runs else None

    def expired_leases(
        self, now: datetime, limit: int = 100, after: TaskRun | None = None
    ) -> list[TaskRun]:
        return self._mine(
            lambda cursor: self._inner.expired_leases(now, self.PAGE, cursor), limit, after
        )

    def stale_dispatches(
        self, now: datetime, limit: int = 100, after: TaskRun | None = None
    ) -> list[TaskRun]:
        return self._mine(
            lambda cursor: self._inner.stale_dispatches(now, self.PAGE, cursor), limit, after
        )

    def _mine(self, page: Callable[[R | None], list[R]], limit: int, after: R | None) -> list[R]:
        """Up to `limit` items of owned runs, paging through the store's from `after`."""
        out: list[R] = []
        while len(out) < limit:
            items = page(after)
            out += [i for i in items if i.run_id in self.runs]
            if len(items) < self.PAGE:
                break
            after = items[-1]
        return out[:limit]


_NOOP = "dev.kumoflow.internal.noop"


def _noop(rt: Runtime, req: TaskRequested) -> Envelope:
    """Frees the in-flight slot of a request that produced no completion."""
    return Envelope(
        id=uuid.uuid4().hex, type=_NOOP, source=rt.source, time=rt.clock.now(), data=req
    )
