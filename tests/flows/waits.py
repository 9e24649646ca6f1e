"""Flows that wait: a sleep, an event on a topic, a person's approval."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from orchestrator import flow, task
from orchestrator.waits import (
    Since,
    gcs_object,
    kumoflow_event,
    pause,
    pubsub_topic,
    sleep,
    wait_for_event,
)


class Approval(BaseModel):
    approved: bool
    approver: str = Field(min_length=1)
    note: str = ""


@task
def woke(seconds: float) -> str:
    return f"slept {seconds}"


@task
def handle_order(event: dict[str, Any] | None) -> Any:
    return None if event is None else event["data"]


@task
def decide(answer: dict[str, Any], amount: int) -> str:
    form = Approval.model_validate(answer)
    return f"{amount} {'approved' if form.approved else 'refused'} by {form.approver}"


@flow(name="napper")
def napper(seconds: float = 3.0) -> str:
    slept = sleep(seconds)
    return woke(seconds, wait_for=[slept])  # type: ignore[call-arg]


@flow(name="order-listener")
def order_listener(timeout: float = 60.0, since: str = Since.WAIT_START.value) -> Any:
    event = wait_for_event(
        pubsub_topic("orders"),
        match={"data": {"kind": "order"}},
        timeout=timeout,
        since=since,
    )
    return handle_order(event)


@flow(name="approval")
def approval(amount: int = 10, timeout: float = 3600.0) -> str:
    answer = pause(input=Approval, timeout=timeout)
    return decide(answer, amount)


@task
def size_of(event: dict[str, Any] | None) -> str:
    return "no file" if event is None else event["data"]["name"]


@flow(name="file-waiter")
def file_waiter(timeout: float = 60.0) -> str:
    found = wait_for_event(gcs_object("landing", "incoming/"), timeout=timeout)
    return size_of(found)


@flow(name="attribute-listener")
def attribute_listener(timeout: float = 60.0) -> Any:
    event = wait_for_event(
        pubsub_topic("orders"), match={"attributes": {"region": "eu"}}, timeout=timeout
    )
    return handle_order(event)


@flow(name="invoice-listener")
def invoice_listener(invoice: int = 42, timeout: float = 60.0) -> Any:
    event = wait_for_event(
        kumoflow_event("invoice-paid"), match={"data": {"invoice": invoice}}, timeout=timeout
    )
    return handle_order(event)
