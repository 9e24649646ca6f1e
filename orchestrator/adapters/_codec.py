"""Our CloudEvents on Pub/Sub: binary content mode (`ce-*` attributes, JSON data) and back.

Decoding is table-driven with one error type (BadInputError), as functions-framework does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cloudevents.http import CloudEvent
from pydantic import ValidationError

from orchestrator.contracts import CODE_ATTRIBUTE, EVENT_TYPES, Envelope
from orchestrator.errors import BadInputError

SPECVERSION = "1.0"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def to_message(event: Envelope) -> tuple[bytes, dict[str, str]]:
    """(data, attributes) of a Pub/Sub message carrying `event` in binary mode."""
    attributes = {
        "specversion": SPECVERSION,
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "time": event.time.isoformat(),
    }
    if event.subject is not None:
        attributes["subject"] = event.subject
    ce = CloudEvent(attributes, None)  # the SDK validates the required context attributes
    out = {f"ce-{k}": str(v) for k, v in ce.get_attributes().items() if v is not None}
    out["content-type"] = "application/json"
    if event.code is not None:
        out[CODE_ATTRIBUTE] = event.code
    return event.data.model_dump_json().encode(), out


def from_message(data: bytes, attributes: Mapping[str, str]) -> Envelope:
    """Our event from a Pub/Sub message, in binary mode or structured mode (JSON envelope)."""
    if "ce-type" in attributes:
        context = {k[3:]: v for k, v in attributes.items() if k.startswith("ce-")}
        payload = data
    else:
        try:
            structured = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise BadInputError(
                "message has no ce-* attributes and its data is not a JSON "
                "CloudEvent; publish in binary or structured content mode"
            ) from e
        if not isinstance(structured, dict) or "specversion" not in structured:
            raise BadInputError(
                "message has no ce-* attributes and its data is not a "
                "structured CloudEvent (no specversion)"
            )
        context = {k: v for k, v in structured.items() if k not in ("data", "data_base64")}
        payload = json.dumps(structured.get("data")).encode()
    return _envelope(context, payload).model_copy(update={"code": attributes.get(CODE_ATTRIBUTE)})


def _envelope(context: Mapping[str, Any], payload: bytes) -> Envelope:
    missing = [k for k in ("id", "type", "source", "specversion") if not context.get(k)]
    if missing:
        raise BadInputError(f"CloudEvent lacks required attribute(s): {', '.join(missing)}")
    event_type = str(context["type"])
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise BadInputError(
            f"unknown event type {event_type!r}; expected one of {', '.join(sorted(EVENT_TYPES))}"
        )
    try:
        body = model.model_validate_json(payload)
    except ValidationError as e:
        raise BadInputError(f"{event_type} data fails its contract: {_brief(e)}") from e
    try:
        time = datetime.fromisoformat(str(context["time"])) if context.get("time") else None
    except ValueError as e:
        raise BadInputError(f"CloudEvent time {context['time']!r} is not RFC 3339") from e
    return Envelope(
        id=str(context["id"]),
        type=event_type,
        source=str(context["source"]),
        time=time or datetime.fromtimestamp(0, UTC),
        data=body,
        subject=context.get("subject"),
    )


def peek_context(data: bytes, attributes: Mapping[str, str]) -> dict[str, str]:
    """Best-effort id and type of a message that may fail to decode, to label its record."""
    if "ce-id" in attributes or "ce-type" in attributes:
        return {k[3:]: v for k, v in attributes.items() if k in ("ce-id", "ce-type")}
    try:
        structured = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(structured, dict):
        return {}
    return {k: str(structured[k]) for k in ("id", "type") if isinstance(structured.get(k), str)}


def unwrap_pubsub(event_type: str, data: Any) -> tuple[bytes, dict[str, str], str]:
    """(data, attributes, message id) of the Pub/Sub message inside a messagePublished event."""
    if event_type != PUBSUB_PUBLISHED:
        raise BadInputError(f"expected a {PUBSUB_PUBLISHED} CloudEvent, got {event_type!r}")
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as e:
            raise BadInputError("messagePublished data is not JSON") from e
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        raise BadInputError("messagePublished data has no `message` object")
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise BadInputError("message attributes must be an object of strings")
    encoded = message.get("data") or ""
    if not isinstance(encoded, str):
        raise BadInputError("message data must be a base64 string")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError as e:
        raise BadInputError("message data is not valid base64") from e
    message_id = str(message.get("messageId") or message.get("message_id") or "")
    return raw, {str(k): str(v) for k, v in attributes.items()}, message_id


def _brief(error: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'data'}: {e['msg']}" for e in error.errors()[:5]]
    return "; ".join(parts)
