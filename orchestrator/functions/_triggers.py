"""The run starter's inputs: our run.requested, GCS finalize (Eventarc event or Pub/Sub
notification), messages on trigger topics, and Cloud Scheduler fires."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from orchestrator.adapters import PUBSUB_PUBLISHED, from_message, unwrap_pubsub
from orchestrator.contracts import RunRequested, flow_version
from orchestrator.errors import BadInputError
from orchestrator.runtime import (
    JOB_ATTRIBUTE,
    Deployed,
    Refused,
    Runtime,
    Windowed,
    for_flow,
    gcs_object,
    message,
    refuse_blocks,
    register_bundled,
    requested_run_id,
    requested_spec,
    requests_for_fire,
    requests_for_message,
    requests_for_object,
)

from ._edge import Seen

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
SCHEDULER_EXECUTED = "google.cloud.scheduler.job.v1.executed"


def run_requests(
    rt: Runtime, cloud_event: Any, seen: Seen
) -> Sequence[RunRequested | Windowed | Refused]:
    """Every run this event asks for (none when it matches no flow's filter), the windows it
    joins (triggers with debounce= or batch=), or a flow's refusal of it; a message a redrive
    targets at one flow (FLOW_ATTRIBUTE) reaches only it."""
    attrs = cloud_event.get_attributes()
    event_type, event_id = str(attrs.get("type")), str(attrs.get("id", ""))
    seen.type, seen.id = event_type, event_id
    register_bundled(rt)  # flows a `terraform apply` alone deployed start on first use
    source = str(attrs.get("source", ""))
    if event_type == STORAGE_FINALIZED:
        return requests_for_object(_deployed(rt), gcs_object(cloud_event.data), event_id)
    if event_type == SCHEDULER_EXECUTED:
        _, found, job = source.rpartition("/jobs/")
        if not found or not job:
            raise BadInputError(f"scheduler event source {source!r} names no job")
        return requests_for_fire(_deployed(rt), job, _time(attrs.get("time")), event_id)
    if event_type != PUBSUB_PUBLISHED:
        raise BadInputError(
            f"run_starter takes run.requested, storage finalize, scheduler or "
            f"Pub/Sub events, not {event_type!r}"
        )
    raw, attributes, message_id = unwrap_pubsub(event_type, cloud_event.data)
    # Name the message, not its envelope.
    seen.raw, seen.id, seen.type, seen.attributes = raw, message_id, None, attributes
    _, found, topic = source.rpartition("/topics/")
    # Our own topic carries only our CloudEvents, and only there do they start runs: a
    # run.requested names any flow, version and run id, which no trigger topic's publisher may.
    if topic != rt.topics.runs and ("ce-type" in attributes or _structured(raw)):
        raise BadInputError(
            f"dev.kumoflow.run.requested is accepted on kumoflow's own topic "
            f"{rt.topics.runs!r} only; topic {topic!r} starts the flows deployed on it from "
            "plain messages (data and attributes become parameters)"
        )
    if topic == rt.topics.runs:
        seen.peeked(raw, attributes)
        seen.event = event = from_message(raw, attributes)
        if not isinstance(event.data, RunRequested):
            raise BadInputError(f"run_starter takes dev.kumoflow.run.requested, not {event.type}")
        req = event.data
        refuse_blocks(requested_spec(rt, req)[1], req.params)
        # The run id derives from the event's identity: a redelivered request starts nothing new.
        derived = requested_run_id(event.source, event.id)
        return [req if req.run_id else req.model_copy(update={"run_id": derived})]
    publish_time = _publish_time(cloud_event.data)
    if "eventType" in attributes:  # a GCS Pub/Sub notification
        if attributes["eventType"] != "OBJECT_FINALIZE":
            return []  # deletes, archives, metadata updates start nothing
        if attributes.get("payloadFormat", "JSON_API_V1") != "JSON_API_V1":
            raise BadInputError("GCS notification payloadFormat must be JSON_API_V1")
        try:
            resource = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise BadInputError("GCS notification data is not the object's JSON resource") from e
        # fake-gcs-server notifies for every bucket, unlike GCS's per-bucket configs.
        quiet = os.environ.get("KUMOFLOW_GCS_NOTIFY_ALL_BUCKETS") == "1"
        objects = requests_for_object(_deployed(rt), gcs_object(resource), message_id, quiet=quiet)
        return for_flow(objects, attributes, f"the notification on topic {topic!r}")
    if JOB_ATTRIBUTE in attributes and topic == rt.topics.schedules:
        return requests_for_fire(
            _deployed(rt), attributes[JOB_ATTRIBUTE], _time(publish_time), message_id
        )
    if not found or not topic:
        raise BadInputError(f"cannot tell the topic from the event source {source!r}")
    requests = requests_for_message(
        _deployed(rt), message(topic, raw, attributes, message_id, publish_time)
    )
    return for_flow(requests, attributes, f"topic {topic!r}")


def _structured(raw: bytes) -> bool:
    """A structured-mode CloudEvent: a JSON object with a specversion."""
    if not raw.lstrip().startswith(b"{"):
        return False
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict) and "specversion" in body


def _publish_time(data: Any) -> str | None:
    if isinstance(data, bytes | str):  # unwrap_pubsub already proved it parses
        data = json.loads(data)
    value = data.get("message", {}).get("publishTime")
    return str(value) if value else None


def _deployed(rt: Runtime) -> list[Deployed]:
    return [Deployed(flow_version(spec), spec) for spec in rt.flows.deployed()]


def _time(value: Any) -> Any:
    from datetime import UTC, datetime

    if isinstance(value, datetime):
        return value
    if not value:
        return datetime.now(UTC)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as e:
        raise BadInputError(f"event time {value!r} is not RFC 3339") from e
