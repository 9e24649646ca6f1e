"""Trigger filters, debounce and batch on the real stack: a burst of uploads to
fake-gcs-server and of Pub/Sub publishes with attributes, closed by the stack's sweeper."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.contracts import Run, RunStatus
from tests.flows import windowed

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def deployed(stack_env: dict[str, str]) -> Any:
    from orchestrator.adapters import FirestoreStore, GcsBlobStore
    from orchestrator.local import deploy_local

    deploy_local("tests/flows/windowed.py")
    project = stack_env["GOOGLE_CLOUD_PROJECT"]
    return FirestoreStore.from_env(project), GcsBlobStore.from_env(project)


def _ended(store: Any, flow: str, mine: Callable[[Run], bool], timeout: float) -> list[Run]:
    """The flow's runs `mine` keeps, once every one has ended and no other opens (an open
    window is a PENDING run: it starts when the window closes)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in store.list_runs(flow, limit=200) if mine(r)]
        if (runs and all(r.status.terminal for r in runs)) or time.monotonic() > deadline:
            return sorted(runs, key=lambda r: int(str(r.trigger.detail["window"])))
        time.sleep(0.5)


def _field(run: Run, param: str, key: str) -> list[Any]:
    """`key` of each object or message the run's parameter holds (one, or a batch's list)."""
    value = run.params[param]
    items = value if isinstance(value, list) else [value]
    return [item[key] for item in items if isinstance(item, dict)]


def _names(run: Run, param: str) -> list[str]:
    return [str(n) for n in _field(run, param, "name")]


def _show(runs: list[Run], param: str, key: str) -> None:
    """What started, for the test's output (-s): the runs and their parameters."""
    for r in runs:
        window = r.trigger.detail["window"]
        print(f"{r.flow} window {window}: {r.status.value} {param}={_field(r, param, key)}")


def test_a_burst_of_uploads_is_filtered_and_batched(deployed: Any) -> None:
    store, blobs = deployed
    token = uuid.uuid4().hex[:8]
    kept = [f"in/{token}-{i}.csv" for i in range(7)]
    for name in [*kept, f"in/{token}.json", f"other/{token}.csv"]:  # the last two: filtered
        blobs.put(f"gs://win-bucket/{name}", b"a,b\n", "text/csv")

    def mine(r: Run) -> bool:
        return token in json.dumps(r.params) or r.status is RunStatus.PENDING

    runs = _ended(store, "win-batch", mine, timeout=60)
    _show(runs, "objs", "name")
    assert all(r.status is RunStatus.SUCCEEDED for r in runs), [r.status for r in runs]
    batches = [_names(r, "objs") for r in runs]
    assert sorted(n for b in batches for n in b) == sorted(kept)  # each once, none filtered
    assert all(1 <= len(b) <= windowed.BATCH_SIZE for b in batches), batches
    assert len(runs) == 3


def test_a_burst_of_uploads_is_debounced_to_its_last(deployed: Any) -> None:
    store, blobs = deployed
    token = uuid.uuid4().hex[:8]
    names = [f"db/{token}-{i}" for i in range(4)]
    for name in names:
        blobs.put(f"gs://win-bucket/{name}", b"x", "text/plain")
        time.sleep(1.0)  # well inside the quiet spell
    runs = _ended(store, "win-debounce", lambda r: token in json.dumps(r.params), 40)
    _show(runs, "obj", "name")
    (run,) = runs
    assert run.status is RunStatus.SUCCEEDED
    assert _names(run, "obj") == [names[-1]]
    events = run.trigger.detail["events"]
    assert isinstance(events, list)
    assert len(events) == 4


def test_messages_are_filtered_by_attributes_and_body_then_batched(deployed: Any) -> None:
    from orchestrator.local import publish

    store, _ = deployed
    token = uuid.uuid4().hex[:8]
    sent = [
        ({"kind": "order"}, "eu"),
        ({"kind": "order"}, "asia"),  # body filter drops it
        ({"kind": "refund"}, "eu"),  # attribute filter drops it
        ({"kind": "order"}, "us"),
        ({"kind": "order"}, "eu"),
    ]
    ids = [
        publish(
            "win-topic",
            json.dumps({"order": {"region": region, "token": token}}).encode(),
            {**attrs, "region": region},
        )
        for attrs, region in sent
    ]
    runs = _ended(store, "win-messages", lambda r: token in json.dumps(r.params), 40)
    _show(runs, "msgs", "attributes")
    (run,) = runs
    assert run.status is RunStatus.SUCCEEDED
    assert sorted(_field(run, "msgs", "message_id")) == sorted([ids[0], ids[3], ids[4]])
