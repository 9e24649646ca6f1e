"""The dead-letter sink: what Pub/Sub gave up delivering becomes a dead-letter record.

Every kumoflow subscription forwards a message to `kumoflow-dead-letter` after its maximum
delivery attempts (repeated transient failures: handlers acknowledge bad input themselves). The
sink's own subscription has no dead-letter policy, and the sink always answers 2xx except when
the record cannot be written (then Pub/Sub retries it): a message here never loops.
"""

from __future__ import annotations

from typing import Any

from orchestrator.adapters import from_message, unwrap_pubsub
from orchestrator.contracts import Envelope
from orchestrator.errors import KumoflowError

from ._edge import reject, runtime

# Attributes Pub/Sub adds when it forwards a message to a dead-letter topic.
SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"
DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"


class Undeliverable(KumoflowError):
    """A message Pub/Sub stopped redelivering (recorded, never raised out of the sink)."""


def record_dead_letter(cloud_event: Any) -> None:
    rt = runtime()
    outer = cloud_event.get_attributes()
    try:
        raw, attributes, message_id = unwrap_pubsub(str(outer.get("type")), cloud_event.data)
    except KumoflowError as e:  # not even a Pub/Sub message: record what we can
        reject(
            rt,
            "dead_letter_sink",
            e,
            event=None,
            raw=b"",
            event_id=str(outer.get("id", "")),
            event_type=None,
        )
        return
    subscription = attributes.get(SOURCE_SUBSCRIPTION, "an unknown subscription")
    count = attributes.get(DELIVERY_COUNT, "?")
    event: Envelope | None = None
    if "ce-type" in attributes:  # one of our CloudEvents: name it (and mask secret params)
        try:
            event = from_message(raw, attributes)
        except (KumoflowError, ValueError):
            event = None
    reason = Undeliverable(
        f"Pub/Sub gave up after {count} delivery attempts on {subscription.rpartition('/')[2]}"
    )
    reject(
        rt,
        "dead_letter_sink",
        reason,
        event=event,
        raw=raw,
        event_id=attributes.get("ce-id") or message_id,
        event_type=attributes.get("ce-type"),
    )
