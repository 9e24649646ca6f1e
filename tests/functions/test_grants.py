"""A function publishes only where its wiring (and so Terraform's IAM) lets it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator import functions
from orchestrator.adapters import MemoryBus
from orchestrator.contracts import EVENT_TYPE_OF, Envelope, RunRequested
from orchestrator.errors import KumoflowError
from orchestrator.functions import GrantedBus
from orchestrator.local import FUNCTIONS
from orchestrator.runtime import LOGGER, TOPICS


def _event() -> Envelope:
    data = RunRequested(flow="f")
    return Envelope(
        id="e1", source="//t", type=EVENT_TYPE_OF[RunRequested], time=datetime.now(UTC), data=data
    )


def test_a_granted_topic_passes_and_any_other_is_refused_naming_the_fix() -> None:
    inner = MemoryBus()
    inner.record = True
    bus = GrantedBus(inner, frozenset({TOPICS.finished}))
    bus.publish(TOPICS.finished, _event())
    bus.publish_all(TOPICS.finished, [_event()])
    assert [t for t, _ in inner.published] == [TOPICS.finished, TOPICS.finished]
    for publish in (bus.publish, lambda t, e: bus.publish_all(t, [e])):
        with pytest.raises(KumoflowError, match=r"not kumoflow-task-requests.*_wiring\.py"):
            publish(TOPICS.tasks, _event())
    assert len(inner.published) == 2  # nothing refused reached the bus


def test_the_runtime_built_from_the_environment_enforces_its_grants(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = next(fn for fn in FUNCTIONS if fn.name == "task_worker")
    # Emulator hosts so the clients need no credentials; building them connects to nothing.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("KUMOFLOW_PUBLISHES", ",".join(worker.publishes))
    # Building from the environment also routes kumoflow's logger to stdout: put it back after.
    saved = (list(LOGGER.handlers), LOGGER.level, LOGGER.propagate)
    functions.use_runtime(None)
    try:
        bus = functions.runtime().bus
    finally:
        functions.use_runtime(None)
        LOGGER.handlers[:], LOGGER.level, LOGGER.propagate = saved
    assert isinstance(bus, GrantedBus)
    assert bus.topics == frozenset(worker.publishes)
