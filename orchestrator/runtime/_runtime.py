"""What every service shares: the ports, topic names, and caches of immutable things."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, JsonValue

from orchestrator.contracts import (
    EVENT_TYPE_OF,
    Envelope,
    FlowSpec,
    ParentRef,
    Run,
    RunRequested,
    RunStatus,
    SourceRef,
)
from orchestrator.engine import (
    MAX_MAP_WIDTH,
    MAX_MAP_WIDTH_ENV,
    Plan,
    expand,
    flow_serializer,
    grown,
    result_task,
)
from orchestrator.errors import BadInputError, NotFoundError
from orchestrator.ports import (
    BlobStore,
    BlockStore,
    Clock,
    DeadLetterStore,
    Etag,
    EventBus,
    FlowStore,
    JobRunner,
    LimitStore,
    RateStore,
    Snapshot,
    StateStore,
    TimerStore,
)
from orchestrator.runtime._topics import Topics


def import_source(source: SourceRef) -> None:
    """Import a flow's module the way its author ran it: by name, or from its file's folder."""
    if source.module in sys.modules:
        return
    if source.path and Path(source.path).exists():
        # The folder that makes `module` importable: a.b.c from /root/a/b/c.py -> /root.
        path = Path(source.path)
        depth = source.module.count(".") + (1 if path.name == "__init__.py" else 0)
        folder = str(path.parents[depth])
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        importlib.import_module(source.module)
    except ImportError as e:
        raise BadInputError(
            f"cannot import module {source.module!r} (from {source.path or 'sys.path'}): {e}; "
            "deploy the flow's code with the task function"
        ) from e


class Resolver:
    """Task refs to functions; in-process runs pre-seed it so nothing is imported twice."""

    def __init__(self, functions: dict[str, Callable[..., Any]] | None = None) -> None:
        self._functions = dict(functions or {})
        self._lock = threading.Lock()

    def resolve(self, ref: str, source: SourceRef) -> Callable[..., Any]:
        found = self._functions.get(ref)
        if found is not None:
            return found
        module_name, _, qualname = ref.partition(":")
        with self._lock:
            if module_name == source.module:
                import_source(source)
            try:
                obj: Any = importlib.import_module(module_name)
                for part in qualname.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError) as e:
                raise BadInputError(f"cannot find task function {ref!r}: {e}") from e
            fn = getattr(obj, "fn", obj)  # a Task object wraps the plain function
            self._functions[ref] = fn
            return fn  # type: ignore[no-any-return]


LEASE_S = 60.0  # a claim's lease (see the worker)


def max_map_width_from_env() -> int:
    """The widest run-time map this process grows (see MAX_MAP_WIDTH); set it alike on the
    orchestrator and the task functions (the latter store no items for wider lists)."""
    raw = os.environ.get(MAX_MAP_WIDTH_ENV, "").strip()
    if not raw:
        return MAX_MAP_WIDTH
    try:
        width = int(raw)
    except ValueError:
        width = 0
    if width < 1:
        raise ValueError(f"{MAX_MAP_WIDTH_ENV} must be a positive whole number, got {raw!r}")
    return width


CACHED_RUNS = 256  # per instance: runs whose plan and document it keeps between events

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A small thread-safe LRU map: a function instance serves many requests at once."""

    def __init__(self, size: int = CACHED_RUNS) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self._size:
                self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)


class RunStarter(Protocol):
    """Starts a run once per run id (the control side's `start_run`)."""

    def __call__(
        self, rt: Runtime, req: RunRequested, *, run_id: str, parent: ParentRef | None = None
    ) -> tuple[Run, bool]: ...


@dataclass(frozen=True)
class Runtime:
    """One instance's collaborators, built once (see _build): its ports, its settings, how it
    starts runs, and its caches of immutable things (flow specs, plans) and of the run
    documents it read last. Variations (a test's shorter lease) are made with
    `dataclasses.replace`, never by changing a built one."""

    flows: FlowStore
    state: StateStore
    timers: TimerStore
    letters: DeadLetterStore
    blobs: BlobStore
    bus: EventBus
    clock: Clock
    # How a subflow node's worker starts its child run: the control side's start_run, handed
    # to the worker side by whoever builds the runtime, so neither side imports the other.
    start: RunStarter
    # Where concurrency limits are kept (the record store); None: no task may name a key.
    limits: LimitStore | None = None
    # Where rate limits are kept (the record store); None: no task may name a rate.
    rates: RateStore | None = None
    results_bucket: str = "kumoflow-results"
    topics: Topics = field(default_factory=Topics)
    source: str = "//kumoflow.dev/local"
    worker_id: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:8]}")
    resolver: Resolver = field(default_factory=Resolver)
    # In-process runs keep the real exception objects so errors chain to them.
    exceptions: dict[tuple[str, str, int], BaseException] | None = None
    # Fault injection for crash tests: called at named points ("after-commit"); may kill the
    # process. Set only by KUMOFLOW_FAULTS in the function edge.
    fault: Callable[[str], None] | None = None
    # A claim's lease, renewed every third of it while user code runs (see the worker). One
    # process running every role (in-process runs) has no other instance to take over from.
    lease_seconds: float = LEASE_S
    renew_leases: bool = True
    # Chunks (of 400 children) a run-time map grows by per delivery: 10,000 children, the
    # default maximum map width, in one; a wider map asks for redelivery and carries on.
    grow_chunks: int = 25
    # Where `Block.load(name)` in task code reads; None: the one the environment names.
    blocks: BlockStore | None = None
    # Runs `runtime="job"` tasks' attempts as job executions; None: this instance cannot.
    jobs: JobRunner | None = None
    # Notification blocks ("KIND/NAME") the deployment tells of every flow's failures
    # (KUMOFLOW_NOTIFY), besides those a flow declares.
    notify: tuple[str, ...] = ()
    # Where result caches live; in-process runs share one across runs of the process.
    cache_store: BlobStore | None = None
    # A run-time map over a longer list fails instead of growing (KUMOFLOW_MAX_MAP_WIDTH).
    max_map_width: int = field(default_factory=max_map_width_from_env)
    _specs: dict[str, FlowSpec] = field(default_factory=dict)
    _plans: Lru[tuple[str, str], Plan] = field(default_factory=Lru)
    # The run documents this instance read last, with their etags (see task_snapshot).
    runs: Lru[str, tuple[Run, Etag]] = field(default_factory=Lru)
    # The bundled flow versions this instance found registered (see register_bundled).
    bundled: set[str] = field(default_factory=set)

    @property
    def cache_blobs(self) -> BlobStore:
        return self.cache_store or self.blobs

    def spec(self, version: str) -> FlowSpec:
        found = self._specs.get(version)
        if found is None:
            found = self.flows.get_flow(version)
            if found is None:
                raise NotFoundError(f"no flow version {version!r} is registered")
            self._specs[version] = found
        return found

    def flow_function(self, spec: FlowSpec) -> Callable[..., Any] | None:
        """The flow's own function, to check parameters against; None when not importable."""
        if "<locals>" in spec.entrypoint:
            return None
        try:
            found = self.resolver.resolve(f"{spec.source.module}:{spec.entrypoint}", spec.source)
        except BadInputError:
            return None
        return found

    def plan(self, version: str, params: dict[str, JsonValue]) -> Plan:
        """The plan of a run about to start (nothing cached: its params are not a run's yet)."""
        return expand(self.spec(version), params)

    def plan_of(self, run: Run) -> Plan:
        """The plan of an existing run, cached across its events. A run's version and params
        never change, so its identity keys the cache: no per-event hashing of its params (a
        10,000-item list parameter would cost every event O(the run))."""
        cache_key = (run.run_id, run.created_at.isoformat())
        found = self._plans.get(cache_key)
        if found is None:
            found = expand(self.spec(run.flow_version), run.params)
            self._plans.put(cache_key, found)
        return found

    def task_snapshot(self, run_id: str, key: str) -> Snapshot | None:
        """The run and one task record. The run comes from this instance's cache while it is
        RUNNING in the task's flow attempt: one read per event instead of two. Its plan never
        changes, and a stale status cannot mislead: a run leaves RUNNING only when every task
        record is terminal (a finish) or rewritten (a cancel, a timeout, a flow retry's
        re-pending), and every write about a task is conditional on its record."""
        known = self.runs.get(run_id)
        if known is not None:
            run, run_etag = known
            tasks, etags = self.state.tasks(run_id, [key])
            task = tasks.get(key)
            # No record yet (a root before its first claim) is no staleness either: a cancel
            # or a flow retry would have written one.
            same_attempt = task is None or (
                bool(task.attempts) and task.attempts[-1].flow_attempt == run.attempt
            )
            if same_attempt:
                return Snapshot(run=run, run_etag=run_etag, tasks=tasks, etags=etags)
        snap = self.state.load(run_id, [key])
        self.remember(run_id, snap)
        return snap

    def forget(self, run_id: str) -> None:
        """Read run `run_id` afresh next time: this instance is about to change it."""
        self.runs.pop(run_id)

    def remember(self, run_id: str, snap: Snapshot | None) -> None:
        if snap is not None and snap.run.status is RunStatus.RUNNING:
            self.runs.put(run_id, (snap.run, snap.run_etag))
        else:
            self.runs.pop(run_id)

    def grown(self, plan: Plan, run_id: str, nodes: Iterable[str]) -> Plan:
        """`plan` with the children of those run-time maps among `nodes` that have them (one
        read of their records): what reading their results as one list needs."""
        wanted = [n for n in dict.fromkeys(nodes) if n in plan.dynamic and n not in plan.widths]
        if not wanted:
            return plan
        return grown(plan, self.state.tasks(run_id, wanted)[0])

    def envelope(
        self,
        data: BaseModel,
        *,
        event_id: str,
        subject: str | None = None,
        code: str | None = None,
    ) -> Envelope:
        return Envelope(
            id=event_id,
            type=EVENT_TYPE_OF[type(data)],
            source=self.source,
            time=self.clock.now(),
            subject=subject,
            data=data,
            code=code,
        )

    def publish(
        self, topic: str, data: BaseModel, *, event_id: str, subject: str | None = None
    ) -> None:
        self.bus.publish(topic, self.envelope(data, event_id=event_id, subject=subject))

    def result_uri(self, run_id: str, name: str, ext: str, storage: str | None = None) -> str:
        """Where a result lives: `storage` is a bucket name or a gs://bucket/prefix."""
        base = storage or self.results_bucket
        base = base.rstrip("/") if base.startswith("gs://") else f"gs://{base}"
        return f"{base}/runs/{run_id}/{name}.{ext}"

    def task_result_uri(self, plan: Plan, run_id: str, key: str) -> str:
        """The one place a task's result may live: derived here, never taken off the wire.
        Every attempt writes it once; the first stored result is the task's result."""
        options = plan.tasks[key].node.options
        return self.result_uri(run_id, key, options.result_serializer, options.result_storage)

    def task_logs_uri(self, plan: Plan, run_id: str, key: str, attempt: int) -> str:
        """Where an attempt's log lives: beside the task's result, one object per attempt."""
        storage = plan.tasks[key].node.options.result_storage
        return self.result_uri(run_id, f"logs/{key}/{attempt}", "jsonl", storage)

    def flow_result_uri(self, plan: Plan, run_id: str, parent: ParentRef | None = None) -> str:
        if parent is not None:  # a subflow's result is its parent node's result, one object
            return parent.result_uri
        own = result_task(plan)
        if own is not None:
            return self.task_result_uri(plan, run_id, own)  # the same object: no copy
        storage = plan.spec.options.result_storage
        return self.result_uri(run_id, "result", flow_serializer(plan), storage)
