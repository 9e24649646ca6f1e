"""The run starter's edge where several flows share a trigger topic: a flow that refuses a
message gets its own dead letter and does not keep the others from starting; and a
run.requested is one run per event identity (source and id), however often it is sent."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from orchestrator import PubSubMessage, flow, functions, on_pubsub, task
from orchestrator.adapters import PUBSUB_PUBLISHED, MemoryStore, VirtualClock
from orchestrator.functions import main
from orchestrator.runtime import memory_runtime

TOPIC = "//pubsub.googleapis.com/projects/test-project/topics/"


@task(name="echo")
def echo(value: object) -> str:
    return repr(value)[:40]


@flow(name="counts-a", triggers=[on_pubsub(topic="shared-topic")])
def counts_a(count: int) -> str:
    return echo(count)


@flow(name="counts-b", triggers=[on_pubsub(topic="shared-topic")])
def counts_b(count: int) -> str:
    return echo(count)


@flow(name="takes-any", triggers=[on_pubsub(topic="shared-topic")])
def takes_any(msg: PubSubMessage | None = None) -> str:
    return echo(msg)


@flow(name="requested")
def requested() -> str:
    return echo("hi")


@pytest.fixture
def store() -> MemoryStore:
    memory = MemoryStore()
    functions.use_runtime(memory_runtime(clock=VirtualClock(), store=memory))
    return memory


def _push(topic: str, data: bytes, attributes: dict[str, str], message_id: str) -> CloudEvent:
    message: dict[str, Any] = {
        "data": base64.b64encode(data).decode(),
        "messageId": message_id,
        "publishTime": "2026-03-01T18:00:01.5Z",
        "attributes": attributes,
    }
    body = {"subscription": "projects/p/subscriptions/s", "message": message}
    return CloudEvent({"type": PUBSUB_PUBLISHED, "source": TOPIC + topic, "id": message_id}, body)


def test_a_flow_that_refuses_a_message_does_not_keep_the_others_from_starting(
    store: MemoryStore,
) -> None:
    store.put_flow(counts_a.spec, deploy=True)  # deployed first: it refuses first
    store.put_flow(takes_any.spec, deploy=True)
    main.run_starter(_push("shared-topic", b'{"count": "many"}', {}, "m-1"))
    assert [r.flow for r in store.list_runs()] == ["takes-any"]
    letters = store.list()
    assert [letter.flow for letter in letters] == ["counts-a"]


def test_each_flow_that_refuses_a_message_gets_its_own_dead_letter(store: MemoryStore) -> None:
    store.put_flow(counts_a.spec, deploy=True)
    store.put_flow(counts_b.spec, deploy=True)
    push = _push("shared-topic", b'{"count": "many"}', {}, "m-2")
    main.run_starter(push)
    main.run_starter(push)  # redelivered: the same two letters, not two more
    assert store.list_runs() == []
    assert sorted(letter.flow or "" for letter in store.list()) == ["counts-a", "counts-b"]


def test_a_run_request_sent_twice_under_one_identity_starts_one_run(store: MemoryStore) -> None:
    store.put_flow(requested.spec)
    body = json.dumps({"flow": "requested", "params": {}}).encode()
    for n, time in enumerate(["2026-03-01T18:00:00Z", "2026-03-01T18:00:09Z"]):
        attributes = {
            "ce-specversion": "1.0",
            "ce-id": "rr-1",
            "ce-type": "dev.kumoflow.run.requested",
            "ce-source": "//kumoflow.dev/tests/edge",
            "ce-time": time,  # the sender published it again, building a new envelope
            "content-type": "application/json",
        }
        main.run_starter(_push("kumoflow-run-requests", body, attributes, f"msg-{n}"))
    assert store.list() == []
    assert [r.flow for r in store.list_runs()] == ["requested"]
