"""Runtimes ready to use: over Google's services (or their emulators), or all in memory."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from orchestrator.adapters import MemoryBlobStore, MemoryBus, MemoryStore, SystemClock
from orchestrator.ports import BlobStore, Clock
from orchestrator.runtime._runtime import Resolver, Runtime
from orchestrator.runtime.control import start_run


def cloud_runtime(project: str, *, source: str, worker_id: str | None = None) -> Runtime:
    """Adapters built from the environment; Firestore also keeps timers and dead letters."""
    from orchestrator.adapters import FirestoreBlockStore, FirestoreStore, GcsBlobStore, PubSubBus

    store = FirestoreStore.from_env(project)
    rt = Runtime(
        flows=store,
        state=store,
        timers=store,
        letters=store,
        blobs=GcsBlobStore.from_env(project),
        bus=PubSubBus.from_env(project),
        clock=SystemClock(),
        start=start_run,
        results_bucket=os.environ.get("KUMOFLOW_RESULTS_BUCKET", "kumoflow-results"),
        source=source,
        blocks=FirestoreBlockStore.from_env(project),
    )
    if worker_id is not None:
        rt.worker_id = worker_id
    # Shorter leases notice a dead worker sooner (tests); never longer than the platform allows.
    rt.lease_seconds = min(float(os.environ.get("KUMOFLOW_LEASE_S", "60")), 300.0)
    return rt


def memory_runtime(
    *,
    clock: Clock | None = None,
    functions: dict[str, Callable[..., Any]] | None = None,
    store: MemoryStore | None = None,
    blobs: BlobStore | None = None,
    bus: MemoryBus | None = None,
) -> Runtime:
    """Everything in memory: one MemoryStore keeps flows, runs, timers and dead letters."""
    store = store or MemoryStore()
    return Runtime(
        flows=store,
        state=store,
        timers=store,
        letters=store,
        blobs=blobs or MemoryBlobStore(),
        bus=bus or MemoryBus(),
        clock=clock or SystemClock(),
        start=start_run,
        resolver=Resolver(functions),
    )
