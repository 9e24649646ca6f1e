"""Parameters typed SecretStr never reach errors, logs, dead letters or `runs show`."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from pydantic import SecretStr

from orchestrator import flow, functions, task
from orchestrator.adapters import MemoryStore, VirtualClock
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
