"""`dlq redrive` on a topic that starts two flows re-delivers to the flow that refused only:
the flow that took the message the first time does not run again, and dedupe still holds."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from orchestrator import flow, functions, on_pubsub, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.functions import main
from orchestrator.local import redrive
from orchestrator.runtime import Runtime, memory_runtime

TOPIC = "twin-topic"


@task(name="twin-echo")
def twin_echo(value: object) -> str:
    return repr(value)


@flow(name="twin-lenient", triggers=[on_pubsub(topic=TOPIC)])
def twin_lenient(n: int = 1) -> str:
    return twin_echo(n)


@flow(name="twin-strict", triggers=[on_pubsub(topic=TOPIC)])
def twin_strict(n: int, label: str) -> str:
    return twin_echo([n, label])


def _delivered(data: bytes, attributes: dict[str, str], message_id: str) -> CloudEvent:
    message = {
        "data": base64.b64encode(data).decode(),
        "attributes": attributes,
        "messageId": message_id,
    }
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": f"//pubsub.googleapis.com/projects/p/topics/{TOPIC}",
            "id": f"outer-{message_id}",
        },
        {"subscription": "projects/p/subscriptions/s", "message": message},
    )


def _setup(*flows: Any) -> tuple[Runtime, MemoryStore]:
    store = MemoryStore()
    for f in flows:
        store.put_flow(f.spec, deploy=True)
    rt = memory_runtime(clock=VirtualClock(), store=store)
    functions.use_runtime(rt)
    return rt, store


def _runs(store: MemoryStore, name: str) -> list[str]:
    return [r.run_id for r in store.list_runs(name)]


@pytest.mark.parametrize(
    "order", [(twin_lenient, twin_strict), (twin_strict, twin_lenient)], ids=["ok-first", "ok-last"]
)
def test_redrive_reaches_the_flow_that_refused_only(order: tuple[Any, Any]) -> None:
    rt, store = _setup(*order)
    main.run_starter(_delivered(b'{"n": 1}', {"origin": "test"}, "m-1"))
    assert len(_runs(store, "twin-lenient")) == 1  # one flow's refusal does not stop the other
    assert _runs(store, "twin-strict") == []
    (letter,) = store.list()
    assert letter.flow == "twin-strict"
    assert letter.topic == TOPIC
    assert "needs parameter 'label'" in letter.reason

    sent: list[tuple[str, bytes, dict[str, str]]] = []
    redrive(
        rt,
        letter.id,
        lambda t, d, a: sent.append((t, d, a)) or "m-2",
        data=b'{"n": 1, "label": "x"}',
    )
    ((topic, data, attributes),) = sent
    assert topic == TOPIC
    assert attributes == {"origin": "test", "kumoflow-flow": "twin-strict"}
    for _ in range(2):  # the redriven message, and a redelivery of it
        main.run_starter(_delivered(data, attributes, "m-2"))
    assert len(_runs(store, "twin-lenient")) == 1  # not re-run
    assert len(_runs(store, "twin-strict")) == 1  # started once
    assert [lt.id for lt in store.list()] == [letter.id]


def test_a_redelivered_message_keeps_one_letter_per_refusing_flow() -> None:
    _, store = _setup(twin_lenient, twin_strict)
    for _ in range(2):
        main.run_starter(_delivered(b'{"n": 1}', {}, "m-1"))
    assert len(_runs(store, "twin-lenient")) == 1
    (letter,) = store.list()
    assert letter.flow == "twin-strict"


def test_a_message_targeting_a_flow_not_on_its_topic_is_refused() -> None:
    _, store = _setup(twin_lenient, twin_strict)
    main.run_starter(_delivered(b'{"n": 1}', {"kumoflow-flow": "elsewhere"}, "m-1"))
    (letter,) = store.list()
    assert letter.flow is None
    assert "flow 'elsewhere'" in letter.reason
    assert "twin-topic" in letter.reason
    assert store.list_runs() == []
