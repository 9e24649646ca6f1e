"""The Runtime over Google's services (or their emulators, per the *_EMULATOR_HOST env)."""

from __future__ import annotations

import os

from orchestrator._firestore import FirestoreStore
from orchestrator._gcs import GcsBlobStore
from orchestrator._memory import SystemClock
from orchestrator._pubsub import PubSubBus
from orchestrator._runtime import Runtime


def cloud_runtime(
    project: str, *, source: str, worker_id: str | None = None
) -> tuple[Runtime, FirestoreStore]:
    """Adapters built from the environment; the store also serves timers and dead letters."""
    store = FirestoreStore.from_env(project)
    rt = Runtime(
        flows=store,
        state=store,
        blobs=GcsBlobStore.from_env(project),
        bus=PubSubBus.from_env(project),
        clock=SystemClock(),
        results_bucket=os.environ.get("KUMOFLOW_RESULTS_BUCKET", "kumoflow-results"),
        source=source,
    )
    if worker_id is not None:
        rt.worker_id = worker_id
    return rt, store
