"""Triggers on the real stack: uploads to fake-gcs-server, messages, the local scheduler."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.contracts import Run, RunStatus

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def deployed(stack_env: dict[str, str]) -> Any:
    from orchestrator.adapters import FirestoreStore, GcsBlobStore
    from orchestrator.local import deploy_local

    deploy_local("examples/ingest.py")
    project = stack_env["GOOGLE_CLOUD_PROJECT"]
    return FirestoreStore.from_env(project), GcsBlobStore.from_env(project)


def _runs(store: Any, flow: str, where: Callable[[Run], bool]) -> list[Run]:
    return [r for r in store.list_runs(flow, limit=200) if where(r)]


def _wait(
    store: Any, flow: str, where: Callable[[Run], bool], count: int = 1, timeout: float = 20
) -> list[Run]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _runs(store, flow, where)
        if len(found) >= count and all(r.status.terminal for r in found):
            return found
        time.sleep(0.2)
    return _runs(store, flow, where)


def _upload(blobs: Any, uri: str, data: bytes) -> None:
    blobs.put(uri, data, "application/json", overwrite=True)


def test_upload_runs_the_matching_flow_once_and_overwrite_runs_again(deployed: Any) -> None:
    store, blobs = deployed
    name = f"incoming/{uuid.uuid4().hex}.json"
    uri = f"gs://inbox/{name}"

    def mine(r: Run) -> bool:
        return (r.trigger.source or "").startswith(uri + "#")

    _upload(blobs, uri, b'{"a": 1}')
    (run,) = _wait(store, "ingest", mine)
    assert run.status is RunStatus.SUCCEEDED
    assert run.trigger.kind == "gcs"
    obj = run.params["obj"]
    assert isinstance(obj, dict)
    assert obj["bucket"] == "inbox"
    assert obj["name"] == name
    assert obj["size"] == 8
    assert obj["md5_hash"]
    assert obj["crc32c"]
    assert obj["content_type"] == "application/json"
    assert obj["time_created"]
    _upload(blobs, uri, b'{"a": 2}')  # a new generation is a new event
    runs = _wait(store, "ingest", mine, count=2)
    assert len(runs) == 2
    assert len({r.trigger.source for r in runs}) == 2
    time.sleep(2)  # nothing else arrives late
    assert len(_runs(store, "ingest", mine)) == 2


def test_non_matching_objects_start_nothing(deployed: Any) -> None:
    store, blobs = deployed
    token = uuid.uuid4().hex
    for uri in (
        f"gs://inbox/other/{token}.json",
        f"gs://inbox/incoming/{token}.txt",
        f"gs://elsewhere/incoming/{token}.json",
    ):
        _upload(blobs, uri, b"{}")
    time.sleep(3)
    assert _runs(store, "ingest", lambda r: token in (r.trigger.source or "")) == []


def test_notification_delivered_twice_starts_one_run(deployed: Any) -> None:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    from orchestrator.local import STARTER, DevStack, subscribe

    store, blobs = deployed
    dev = DevStack.from_env()
    topic = dev.config.gcs_notification_topic
    subscriber = pubsub_v1.SubscriberClient()
    name = "kumoflow-trigger-gcs-twice"
    port = dev.functions_port + STARTER.local_port_offset
    try:
        subscribe(dev, subscriber, name, topic, dev.push_url(port, topic), 60)
        uri = f"gs://inbox/incoming/{uuid.uuid4().hex}.json"
        _upload(blobs, uri, b"{}")
        time.sleep(3)
        runs = _wait(store, "ingest", lambda r: (r.trigger.source or "").startswith(uri))
        assert len(runs) == 1
        assert runs[0].status is RunStatus.SUCCEEDED
    finally:
        subscriber.delete_subscription(
            subscription=subscriber.subscription_path(dev.config.project, name)
        )
        subscriber.close()


def test_publish_runs_the_flow_with_its_params(deployed: Any) -> None:
    from orchestrator.engine import decode
    from orchestrator.local import publish, stack_runtime

    store, _ = deployed
    message_id = publish("ingest-requests", b'{"mode": "manual"}', {})
    (run,) = _wait(store, "ingest", lambda r: r.trigger.event_id == message_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.params["mode"] == "manual"
    rt = stack_runtime()
    assert run.result_uri
    assert decode(rt.blobs.get(run.result_uri), run.result_uri) == "manual: nothing to ingest"


def test_per_minute_schedule_fires_once_per_minute(stack_env: dict[str, str]) -> None:
    from orchestrator import emulators
    from orchestrator.adapters import FirestoreStore
    from orchestrator.local import DevStack, deploy_local

    store = FirestoreStore.from_env(stack_env["GOOGLE_CLOUD_PROJECT"])
    deploy_local("tests/flows/scheduled.py")
    config = DevStack.from_env().config
    try:
        runs = _wait(
            store, "every-minute", lambda r: r.trigger.kind == "schedule", count=2, timeout=130
        )
    finally:
        emulators.write_jobs(
            config,
            [
                j
                for j in emulators.read_jobs(config)
                if not j.name.startswith("kumoflow-every-minute-")
            ],
        )
    slots = sorted(str(r.trigger.detail["scheduled_for"]) for r in runs)
    assert len(runs) >= 2
    assert len(set(slots)) == len(slots)  # one run per minute slot
    assert all(s.endswith(":00+00:00") for s in slots)
    assert all(r.params == {"label": "tick"} for r in runs)
