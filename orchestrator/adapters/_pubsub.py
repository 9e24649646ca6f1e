"""Pub/Sub adapter for EventBus: CloudEvents in binary mode, published without batching delay."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from orchestrator.adapters._codec import to_message
from orchestrator.contracts import Envelope
from orchestrator.errors import TransientError

PUBLISH_TIMEOUT_S = 30.0


class PubSubBus:
    def __init__(self, project: str, publisher: pubsub_v1.PublisherClient | None = None) -> None:
        self._project = project
        # Batching would hold each message ~10 ms waiting for company; a DAG step is latency-bound.
        self._publisher = publisher or pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=100, max_latency=0.0)
        )

    @classmethod
    def from_env(cls, project: str | None = None) -> PubSubBus:
        return cls(project or os.environ.get("GOOGLE_CLOUD_PROJECT", "kumoflow-local"))

    def topic_path(self, topic: str) -> str:
        return (
            topic if topic.startswith("projects/") else f"projects/{self._project}/topics/{topic}"
        )

    def publish(self, topic: str, event: Envelope) -> None:
        self.publish_all(topic, [event])

    def publish_all(self, topic: str, events: Sequence[Envelope]) -> None:
        path = self.topic_path(topic)
        try:
            futures = []
            for event in events:
                data, attributes = to_message(event)
                futures.append(self._publisher.publish(path, data, **attributes))
            for future in futures:  # all in flight at once; each acknowledged before we return
                future.result(timeout=PUBLISH_TIMEOUT_S)
        except (
            gexc.ServiceUnavailable,
            gexc.DeadlineExceeded,
            gexc.RetryError,
            FutureTimeout,
        ) as e:
            raise TransientError(f"publishing to {topic}: Pub/Sub unavailable ({e})") from e
        except gexc.NotFound as e:
            raise TransientError(
                f"topic {topic} does not exist; run `kumoflow dev up` "
                "(or apply the Terraform) to create it"
            ) from e
