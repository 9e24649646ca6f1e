"""Fixtures of the end-to-end tests on the local stack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def dev(stack_env: dict[str, str]) -> Any:
    from orchestrator.local import DevStack

    return DevStack.from_env()


@pytest.fixture
def doubled(dev: Any) -> Iterator[None]:
    """A second push subscription on every function's topic: each message arrives twice."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    from orchestrator.local import FUNCTIONS, subscribe

    subscriber = pubsub_v1.SubscriberClient()
    names = []
    try:
        for fn in FUNCTIONS[:3]:
            port = dev.functions_port + fn.local_port_offset
            name = f"{fn.subscription}-twice"
            subscribe(
                dev, subscriber, name, fn.topic, dev.push_url(port, fn.topic), fn.ack_deadline_s
            )
            names.append(subscriber.subscription_path(dev.config.project, name))
        yield
    finally:
        for path in names:
            subscriber.delete_subscription(subscription=path)
        subscriber.close()
