"""`kumoflow run FLOW --project P`: the run request it publishes is the one the run starter takes
(on kumoflow's own topic, prefix honoured), the run id it prints is the one the starter gives,
params are checked against the registered spec, and each failure says what to do. In process
over the in-memory adapters; Google's errors come from ports that raise them."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cloudevents.http import CloudEvent
from google.api_core import exceptions as gexc

from orchestrator import flow, functions, task
from orchestrator.adapters import PUBSUB_PUBLISHED, MemoryBus, MemoryStore, to_message
from orchestrator.cli import main
from orchestrator.cloud import READER_ROLE, registered, request_run
from orchestrator.contracts import Envelope, RunRequested, flow_version
from orchestrator.errors import KumoflowError, ParameterError
from orchestrator.functions import main as functions_main
from orchestrator.runtime import Runtime, Topics, memory_runtime

pytestmark = pytest.mark.usefixtures("restored_environ")


@task(name="greet")
def greet(name: str, times: int) -> str:
    return name * times


@flow(name="hello-deployed")
def hello_deployed(name: str, times: int = 1) -> str:
    return greet(name, times)


class RecordingBus(MemoryBus):
    def __init__(self) -> None:
        super().__init__()
        self.record = True


class DeniedBus(MemoryBus):
    def publish(self, topic: str, event: Envelope) -> None:
        raise gexc.PermissionDenied("User not authorized to perform this action.")  # type: ignore[no-untyped-call]


class UnreadableStore(MemoryStore):
    def latest_version(self, flow: str) -> str | None:
        raise gexc.PermissionDenied("Missing or insufficient permissions.")  # type: ignore[no-untyped-call]


def _runtime(store: MemoryStore, bus: MemoryBus, prefix: str = "kumoflow") -> Runtime:
    rt = memory_runtime(store=store, bus=bus)
    return replace(rt, topics=Topics().named(prefix), source="//kumoflow.dev/cli/p")


def _push(topic: str, event: Envelope) -> CloudEvent:
    data, attributes = to_message(event)
    body = {
        "subscription": "projects/p/subscriptions/s",
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": "pushed-1",
        },
    }
    source = f"//pubsub.googleapis.com/projects/p/topics/{topic}"
    return CloudEvent({"type": PUBSUB_PUBLISHED, "source": source, "id": "pushed-1"}, body)


def test_the_printed_run_id_is_the_one_the_starter_gives() -> None:
    store, bus = MemoryStore(), RecordingBus()
    store.put_flow(hello_deployed.spec, deploy=True)
    rt = _runtime(store, bus, prefix="acme")
    found = registered(rt, "hello-deployed")
    assert found.version == flow_version(hello_deployed.spec)
    assert found.unchecked is None
    run_id = request_run(rt, "hello-deployed", {"name": "x", "times": 3}, found)
    ((topic, event),) = bus.published
    assert topic == "acme-run-requests"  # the installation's prefix, kumoflow's own topic
    assert isinstance(event.data, RunRequested)
    assert event.data.run_id is None
    functions.use_runtime(rt)
    try:
        functions_main.run_starter(_push(topic, event))
    finally:
        functions.use_runtime(None)
    assert [letter.reason for letter in store.list()] == []
    (run,) = store.list_runs()
    assert run.run_id == run_id
    assert run.params == {"name": "x", "times": 3}


def test_params_are_checked_against_the_registered_spec() -> None:
    store, bus = MemoryStore(), RecordingBus()
    store.put_flow(hello_deployed.spec, deploy=True)
    rt = _runtime(store, bus)
    found = registered(rt, "hello-deployed")
    with pytest.raises(ParameterError, match="name"):
        request_run(rt, "hello-deployed", {"times": 2}, found)
    with pytest.raises(ParameterError, match="nope"):
        request_run(rt, "hello-deployed", {"name": "a", "nope": 1}, found)
    assert bus.published == []


def test_an_unreadable_firestore_still_publishes_and_says_why_unchecked() -> None:
    bus = RecordingBus()
    rt = _runtime(UnreadableStore(), bus)
    found = registered(rt, "hello-deployed")
    assert found.spec is None
    assert found.unchecked is not None
    assert READER_ROLE in found.unchecked
    request_run(rt, "hello-deployed", {"anything": 1}, found)
    assert len(bus.published) == 1


def test_an_unregistered_flow_is_left_to_the_bundle() -> None:
    rt = _runtime(MemoryStore(), RecordingBus())
    found = registered(rt, "hello-deployed")
    assert found.unchecked is not None
    assert "bundle" in found.unchecked


def test_permission_denied_names_the_role_to_grant() -> None:
    store = MemoryStore()
    store.put_flow(hello_deployed.spec, deploy=True)
    rt = _runtime(store, DeniedBus())
    found = registered(rt, "hello-deployed")
    with pytest.raises(KumoflowError, match=r"roles/pubsub\.publisher") as e:
        request_run(rt, "hello-deployed", {"name": "x"}, found)
    assert "kumoflow-run-requests" in str(e.value)


def test_without_credentials_the_cli_says_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    args = ["run", "hello-deployed", "--project", "p", "-p", "name=x", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    error: dict[str, Any] = json.loads(result.output)
    assert "gcloud auth application-default login" in error["error"]


def test_wait_needs_a_project() -> None:
    result = CliRunner().invoke(main, ["run", "x.py:f", "--wait"])
    assert result.exit_code == 2
    assert "--project" in result.output
