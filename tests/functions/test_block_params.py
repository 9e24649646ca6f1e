"""A message never chooses credentials: block-typed parameters come from the flow's own
declaration (its default), and no block reference is taken from a message."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from orchestrator import flow, functions, on_pubsub, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.functions import main
from orchestrator.gcp import GcpCredentials
from orchestrator.runtime import TOPICS, memory_runtime

PROD = {"$block": "gcp-credentials/prod-admin"}
KEY_FILE = {"service_account_file": "/etc/kumoflow/prod-admin-key.json"}


@task(name="key-file-of")
def key_file_of(credentials: GcpCredentials | None, config: dict[str, Any] | None, n: int) -> str:
    return f"{credentials.service_account_file if credentials else 'adc'}/{config}/{n}"


@flow(name="creds-on-topic", triggers=[on_pubsub(topic="creds-topic")])
def creds_on_topic(
    credentials: GcpCredentials | None = None, config: dict[str, Any] | None = None, n: int = 1
) -> str:
    return key_file_of(credentials, config, n)


def test_the_spec_knows_which_parameters_are_blocks() -> None:
    kinds = {p.name: p.block for p in creds_on_topic.spec.params}
    assert kinds == {"credentials": "gcp-credentials", "config": None, "n": None}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    monkeypatch.setenv("KUMOFLOW_BLOCKS_DIR", str(tmp_path / "blocks"))
    GcpCredentials(service_account_file=KEY_FILE["service_account_file"]).save("prod-admin")
    memory = MemoryStore()
    memory.put_flow(creds_on_topic.spec, deploy=True)
    functions.use_runtime(memory_runtime(clock=VirtualClock(), store=memory))
    return memory


def _message(
    data: dict[str, Any], attributes: dict[str, str], topic: str, message_id: str = "m-1"
) -> CloudEvent:
    message = {
        "data": base64.b64encode(json.dumps(data).encode()).decode(),
        "attributes": attributes,
        "messageId": message_id,
    }
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": f"//pubsub.googleapis.com/projects/p/topics/{topic}",
            "id": "outer-1",
        },
        {"subscription": "projects/p/subscriptions/s", "message": message},
    )


def _trigger(data: dict[str, Any], attributes: dict[str, str] | None = None) -> CloudEvent:
    return _message(data, attributes or {}, "creds-topic")


def _run_requested(params: dict[str, Any]) -> CloudEvent:
    attributes = {
        "ce-specversion": "1.0",
        "ce-id": "creds-1",
        "ce-type": "dev.kumoflow.run.requested",
        "ce-source": "//kumoflow.dev/tests/blocks",
        "content-type": "application/json",
    }
    return _message({"flow": "creds-on-topic", "params": params}, attributes, TOPICS.runs)


REFUSED = [
    ("trigger-block-ref", lambda: _trigger({"credentials": PROD}), "credentials"),
    ("trigger-inline-key-file", lambda: _trigger({"credentials": KEY_FILE}), "credentials"),
    (
        "trigger-attribute-block-ref",
        lambda: _trigger({}, {"credentials": json.dumps(PROD)}),
        "credentials",
    ),
    ("trigger-ref-in-plain-param", lambda: _trigger({"config": {"creds": PROD}}), "config"),
    ("run-requested-block-ref", lambda: _run_requested({"credentials": PROD}), "credentials"),
    (
        "run-requested-inline-key-file",
        lambda: _run_requested({"credentials": KEY_FILE}),
        "credentials",
    ),
]


@pytest.mark.parametrize(("case", "event", "param"), REFUSED, ids=[c[0] for c in REFUSED])
def test_a_message_cannot_choose_a_block(
    store: MemoryStore, case: str, event: Any, param: str
) -> None:
    main.run_starter(event())  # returns: acknowledged
    (letter,) = store.list()
    assert letter.source == "run_starter"
    assert letter.reason.startswith("BadInputError: ")
    assert f"parameter {param!r} of flow 'creds-on-topic'" in letter.reason
    assert store.list_runs() == []


def test_a_message_without_blocks_gets_the_declared_default(store: MemoryStore) -> None:
    main.run_starter(_trigger({"n": 2, "config": {"a": 1}}))
    assert store.list() == []
    (run,) = store.list_runs()
    assert run.params == {"credentials": None, "config": {"a": 1}, "n": 2}


@flow(name="declares-its-block", triggers=[on_pubsub(topic="declared-topic")])
def declares_its_block(
    credentials: GcpCredentials = PROD,  # type: ignore[assignment]  # the declaration's block
    n: int = 1,
) -> str:
    return key_file_of(credentials, None, n)


def test_the_declared_block_is_the_one_a_run_gets(store: MemoryStore) -> None:
    store.put_flow(declares_its_block.spec, deploy=True)
    main.run_starter(_message({"n": 3}, {}, "declared-topic"))
    assert store.list() == []
    (run,) = store.list_runs()
    assert run.params == {"credentials": PROD, "n": 3}
    main.run_starter(_message({"credentials": PROD, "n": 4}, {}, "declared-topic", "m-2"))
    (letter,) = store.list()  # even naming the declared block itself: not the message's call
    assert "parameter 'credentials' of flow 'declares-its-block' is a gcp-credentials block" in (
        letter.reason
    )
