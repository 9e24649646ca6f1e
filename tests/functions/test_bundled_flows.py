"""Flows deployed by `terraform apply` alone: the run starter registers the specs the bundle
ships (orchestrator/deployed-flows.json, as `kumoflow deploy` writes it) before it starts a
run, in process over the in-memory adapters."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from orchestrator import flow, functions, on_pubsub, task
from orchestrator.adapters import PUBSUB_PUBLISHED, MemoryStore, VirtualClock, to_message
from orchestrator.cloud import bundle_files
from orchestrator.contracts import RunRequested, flow_version
from orchestrator.functions import main
from orchestrator.runtime import (
    MANIFEST,
    MANIFEST_ENV,
    bundled_specs,
    memory_runtime,
    register_bundled,
    requested_run_id,
)

TOPIC_SOURCE = "//pubsub.googleapis.com/projects/p/topics/"


@task(name="double")
def double(n: int) -> int:
    return n * 2


@flow(name="bundled-orders", triggers=[on_pubsub(topic="orders")])
def bundled_orders(n: int = 1) -> int:
    return double(n)


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    files = bundle_files([], [], [bundled_orders.spec])
    path = tmp_path / MANIFEST
    path.write_bytes(files[f"orchestrator/{MANIFEST}"])
    monkeypatch.setenv(MANIFEST_ENV, str(path))
    return path


def _pushed(topic: str, data: bytes, attributes: dict[str, str], message_id: str) -> CloudEvent:
    body = {
        "subscription": "projects/p/subscriptions/s",
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": message_id,
            "publishTime": "2026-03-01T18:00:01Z",
        },
    }
    attrs = {"type": PUBSUB_PUBLISHED, "source": TOPIC_SOURCE + topic, "id": message_id}
    return CloudEvent(attrs, body)


def _letters(store: MemoryStore) -> list[Any]:
    return [letter.reason for letter in store.list()]


def test_the_bundle_ships_the_deployed_specs_unchanged(manifest: Path) -> None:
    (spec,) = bundled_specs(manifest)
    assert flow_version(spec) == flow_version(bundled_orders.spec)


def test_a_trigger_starts_a_flow_only_the_bundle_knows(manifest: Path) -> None:
    store = MemoryStore()
    functions.use_runtime(memory_runtime(clock=VirtualClock(), store=store))
    assert store.deployed() == []
    main.run_starter(_pushed("orders", json.dumps({"n": 4}).encode(), {}, "m-1"))
    assert _letters(store) == []
    (run,) = store.list_runs()
    assert (run.flow, run.params) == ("bundled-orders", {"n": 4})
    assert run.flow_version == flow_version(bundled_orders.spec)
    assert [s.name for s in store.deployed()] == ["bundled-orders"]


def test_a_run_request_naming_no_version_starts_the_bundled_one(manifest: Path) -> None:
    store = MemoryStore()
    rt = memory_runtime(clock=VirtualClock(), store=store)
    functions.use_runtime(rt)
    event = rt.envelope(RunRequested(flow="bundled-orders", params={"n": 2}), event_id="cli-1")
    data, attributes = to_message(event)
    main.run_starter(_pushed(rt.topics.runs, data, attributes, "m-2"))
    assert _letters(store) == []
    (run,) = store.list_runs()
    assert run.run_id == requested_run_id(event.source, event.id)
    assert run.flow_version == flow_version(bundled_orders.spec)


def test_registration_happens_once_and_only_for_what_is_missing(manifest: Path) -> None:
    store = MemoryStore()
    rt = memory_runtime(clock=VirtualClock(), store=store)
    version = flow_version(bundled_orders.spec)
    assert register_bundled(rt) == [version]
    assert register_bundled(rt) == []  # this instance knows it now: no read
    again = memory_runtime(clock=VirtualClock(), store=store)
    assert register_bundled(again) == []  # another instance finds it registered
    assert again.bundled == {version}


def test_outside_a_bundle_nothing_is_registered(tmp_path: Path) -> None:
    store = MemoryStore()
    rt = memory_runtime(store=store)
    assert register_bundled(rt, tmp_path / MANIFEST) == []
    assert store.deployed() == []
