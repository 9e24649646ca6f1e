"""Parameters typed SecretStr never reach errors, logs, dead letters or `runs show`."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from pydantic import SecretStr

from orchestrator import flow, functions, on_pubsub, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import DeadLetter
from orchestrator.functions import main
from orchestrator.runtime import TOPICS, masked, memory_runtime, secret_params

TOKEN = "hunter2-very-secret"


@task(name="use-token")
def use_token(token: str, n: int) -> int:
    return len(token) + n


@flow(name="with-secret")
def with_secret(token: SecretStr, n: int = 1) -> int:
    return use_token(token, n)


def _run_request(params: dict[str, Any]) -> CloudEvent:
    attributes = {
        "ce-specversion": "1.0",
        "ce-id": "secret-1",
        "ce-type": "dev.kumoflow.run.requested",
        "ce-source": "//kumoflow.dev/tests/secrets",
        "content-type": "application/json",
    }
    body = json.dumps({"flow": "with-secret", "params": params}).encode()
    message = {"data": base64.b64encode(body).decode(), "attributes": attributes, "messageId": "1"}
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": f"//pubsub.googleapis.com/projects/p/topics/{TOPICS.runs}",
            "id": "outer-1",
        },
        {"subscription": "projects/p/subscriptions/s", "message": message},
    )


@pytest.fixture
def store() -> MemoryStore:
    memory = MemoryStore()
    memory.put_flow(with_secret.spec, deploy=True)
    functions.use_runtime(memory_runtime(clock=VirtualClock(), store=memory))
    return memory


def test_the_flow_declares_its_secret() -> None:
    assert secret_params(with_secret.spec) == {"token"}
    assert masked({"token": TOKEN, "n": 2}, {"token"}) == {"token": "**********", "n": 2}


def test_a_rejected_run_request_keeps_no_secret_in_its_dead_letter_or_log(
    store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kumoflow")
    main.run_starter(_run_request({"token": TOKEN, "n": "not a number"}))
    (letter,) = store.list()
    assert "'n'" in letter.reason  # the bad parameter is named...
    assert letter.payload is not None
    assert '"n":"not a number"' in letter.payload  # ...and shown
    assert TOKEN not in letter.payload
    assert TOKEN not in letter.reason
    assert "**********" in letter.payload
    assert TOKEN not in caplog.text
    assert store.list_runs() == []


def test_a_secret_that_fails_its_type_is_named_not_shown(store: MemoryStore) -> None:
    main.run_starter(_run_request({"token": {"nested": TOKEN}}))
    (letter,) = store.list()
    assert "'token'" in letter.reason
    assert TOKEN not in letter.reason
    assert TOKEN not in (letter.payload or "")


# --- trigger topics: a message's params and attributes, rejected or accepted ----------------


@flow(name="secret-on-topic", triggers=[on_pubsub(topic="secret-topic")])
def secret_on_topic(token: SecretStr, n: int = 1) -> int:
    return use_token(token, n)


def _published(
    data: bytes, attributes: dict[str, str], topic: str = "secret-topic", message_id: str = "m-1"
) -> CloudEvent:
    message = {
        "data": base64.b64encode(data).decode(),
        "attributes": attributes,
        "messageId": message_id,
    }
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": f"//pubsub.googleapis.com/projects/p/topics/{topic}",
            "id": f"outer-{message_id}",
        },
        {"subscription": "projects/p/subscriptions/s", "message": message},
    )


@pytest.fixture
def topic_store() -> MemoryStore:
    memory = MemoryStore()
    memory.put_flow(with_secret.spec, deploy=True)
    memory.put_flow(secret_on_topic.spec, deploy=True)
    functions.use_runtime(memory_runtime(clock=VirtualClock(), store=memory))
    return memory


def _no_token(letter: DeadLetter) -> None:
    assert TOKEN not in letter.reason
    assert TOKEN not in (letter.payload or "")
    assert TOKEN not in json.dumps(letter.attributes)
    assert letter.exact is False  # masked: a redrive needs the real input (--data)


def test_a_rejected_trigger_message_keeps_no_secret_in_its_dead_letter(
    topic_store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kumoflow")
    body = json.dumps({"token": TOKEN, "n": "not a number"}).encode()
    main.run_starter(_published(body, {"label": "x"}))
    (letter,) = topic_store.list()
    assert "'n'" in letter.reason
    _no_token(letter)
    assert json.loads(letter.payload or "") == {"token": "**********", "n": "not a number"}
    assert letter.attributes == {"label": "x"}
    assert TOKEN not in caplog.text
    assert topic_store.list_runs() == []


def test_a_secret_given_as_an_attribute_is_masked_in_the_dead_letter(
    topic_store: MemoryStore,
) -> None:
    main.run_starter(_published(b'{"n": "many"}', {"token": TOKEN}))
    (letter,) = topic_store.list()
    _no_token(letter)
    assert letter.attributes == {"token": "**********"}
    assert letter.payload == '{"n": "many"}'


def test_an_accepted_trigger_message_stores_its_secret_attribute_masked(
    topic_store: MemoryStore,
) -> None:
    main.run_starter(_published(b'{"n": 2}', {"token": TOKEN, "label": "x"}))
    assert topic_store.list() == []
    (run,) = topic_store.list_runs()
    assert run.params["token"] == TOKEN  # tasks need it: the run document keeps it
    assert run.trigger.detail == {"attributes": {"token": "**********", "label": "x"}}
    assert TOKEN not in run.trigger.model_dump_json()


def test_a_run_request_failing_its_contract_keeps_no_secret(topic_store: MemoryStore) -> None:
    """Not even decoded (an extra field): the raw input is still masked by the secret's name."""
    attributes = {
        "ce-specversion": "1.0",
        "ce-id": "secret-raw-1",
        "ce-type": "dev.kumoflow.run.requested",
        "ce-source": "//kumoflow.dev/tests/secrets",
        "content-type": "application/json",
    }
    body = json.dumps({"flow": "with-secret", "params": {"token": TOKEN}, "oops": 1}).encode()
    main.run_starter(_published(body, attributes, topic=TOPICS.runs))
    (letter,) = topic_store.list()
    assert "Extra inputs" in letter.reason
    _no_token(letter)


def test_a_trigger_message_pubsub_gave_up_on_keeps_no_secret(topic_store: MemoryStore) -> None:
    body = json.dumps({"token": TOKEN, "n": 1}).encode()
    forwarded = {
        "token": TOKEN,
        "CloudPubSubDeadLetterSourceSubscription": "projects/p/subscriptions/kumoflow-secret",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
    }
    main.dead_letter_sink(_published(body, forwarded, topic="kumoflow-dead-letter"))
    (letter,) = topic_store.list()
    assert letter.source == "dead_letter_sink"
    _no_token(letter)


@pytest.mark.parametrize(
    "body",
    [
        b'{"token": "' + TOKEN.encode() + b'", "n": 1',  # cut short: not JSON
        b'{"token": "' + TOKEN.encode() + b'", "n": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ],
    ids=["broken-json", "too-deep"],
)
def test_a_trigger_message_that_is_not_json_withholds_an_input_naming_a_secret(
    topic_store: MemoryStore, body: bytes
) -> None:
    main.run_starter(_published(body, {}))
    (letter,) = topic_store.list()
    assert "data must be a JSON object" in letter.reason or "nested too deeply" in letter.reason
    _no_token(letter)
    assert letter.payload is None
