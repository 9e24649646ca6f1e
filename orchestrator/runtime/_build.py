"""Runtimes ready to use: over Google's services (or their emulators), or all in memory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

from orchestrator.adapters import (
    MemoryBlobStore,
    MemoryBus,
    MemoryJobs,
    MemoryStore,
    SystemClock,
    name_prefix,
)
from orchestrator.ports import BlobStore, Clock, EventBus, RecordStore
from orchestrator.runtime._armed import ArmedState
from orchestrator.runtime._runtime import Resolver, Runtime
from orchestrator.runtime._topics import TOPICS
from orchestrator.runtime.control import start_run
from orchestrator.runtime.worker import run_job_attempt

NOTIFY_ENV = "KUMOFLOW_NOTIFY"  # "KIND/NAME,...": notification blocks told of every failure


def cloud_runtime(
    project: str,
    *,
    source: str,
    worker_id: str | None = None,
    bus: Callable[[EventBus], EventBus] | None = None,
    fault: Callable[[str], None] | None = None,
) -> Runtime:
    """Adapters built from the environment; Firestore also keeps timers and dead letters; the
    topics carry the installation's name prefix (KUMOFLOW_NAME_PREFIX).
    `bus` wraps the Pub/Sub bus (the topics a function may publish to); `fault` is the named
    fault points' hook (crash tests)."""
    from orchestrator.adapters import (
        CloudRunJobs,
        CloudTasksQueue,
        FirestoreBlockStore,
        FirestoreStore,
        GcsBlobStore,
        PubSubBus,
    )

    store = FirestoreStore.from_env(project)
    pubsub: EventBus = PubSubBus.from_env(project)
    clock = SystemClock()
    # Timers also get a Cloud Task each where a queue is configured (KUMOFLOW_TIMER_QUEUE):
    # they fire on time instead of at the sweeper's next tick (see runtime/_armed.py).
    queue = CloudTasksQueue.from_env(source)
    return Runtime(
        flows=store,
        state=ArmedState(store, queue, clock) if queue is not None else store,
        timers=store,
        letters=store,
        blobs=GcsBlobStore.from_env(project),
        bus=bus(pubsub) if bus is not None else pubsub,
        clock=clock,
        start=start_run,
        limits=store,
        rates=store,
        results_bucket=os.environ.get("KUMOFLOW_RESULTS_BUCKET", "kumoflow-results"),
        topics=TOPICS.named(name_prefix()),
        source=source,
        worker_id=worker_id or f"worker-{uuid.uuid4().hex[:8]}",
        fault=fault,
        # Shorter leases notice a dead worker sooner (tests); never longer than the platform
        # allows.
        lease_seconds=min(float(os.environ.get("KUMOFLOW_LEASE_S", "60")), 300.0),
        blocks=FirestoreBlockStore.from_env(project),
        jobs=CloudRunJobs.from_env(),  # runtime="job" tasks (KUMOFLOW_TASK_JOB)
        notify=tuple(b for b in os.environ.get(NOTIFY_ENV, "").split(",") if b.strip()),
    )


def memory_runtime(
    *,
    clock: Clock | None = None,
    functions: dict[str, Callable[..., Any]] | None = None,
    store: RecordStore | None = None,
    blobs: BlobStore | None = None,
    bus: MemoryBus | None = None,
) -> Runtime:
    """One process's runtime: one store keeps flows, runs, timers and dead letters (a
    MemoryStore unless given one, such as the SqliteStore of local history), the bus is in
    memory; a job-run task's execution is a thread running its entrypoint on this runtime."""
    store = store if store is not None else MemoryStore()
    jobs = MemoryJobs()
    rt = Runtime(
        flows=store,
        state=store,
        timers=store,
        letters=store,
        blobs=blobs if blobs is not None else MemoryBlobStore(),
        bus=bus or MemoryBus(),
        clock=clock or SystemClock(),
        start=start_run,
        limits=store,
        rates=store,
        resolver=Resolver(functions),
        jobs=jobs,
    )
    jobs.bind(lambda env: run_job_attempt(rt, env))
    return rt
