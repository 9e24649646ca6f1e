"""`wait_for_event(source, match=..., timeout=...)`: a node that ends with the first matching
event of its source, and the event mailbox those events are kept in.

The mailbox is the results bucket's `kumoflow/events/<source>/` (write-once objects named by
the event's time, then a digest of its id; the layout and its expiry: orchestrator/runtime/
_mailbox.py), so every waiting run reads the same events and a duplicate delivery of one
event is one record: a marker object per event id (create-only) holds
the event as first recorded, and a redelivery re-writes that same record. A waiting node's
attempt parks (a deferred task) and its check, fired by the sweeper, lists the records from its
`since` on, in time order, and returns the first that matches: that value is stored write-once
as the node's result through the one completion path, so racing checks (two instances, a
redelivered timer) end the node once with one event.

Pub/Sub messages reach the mailbox through the check itself: each check of a wait on a topic
first drains `<name prefix>-wait-<topic>` (a pull subscription created with the wait, shared by all
waits on that topic) into the mailbox, acknowledging only what is recorded. A message
published before any wait on its topic existed is therefore not kept; one published after the
subscription exists is kept for every later wait that takes it (`since=Since.RUN_START`).
GCS objects are not recorded: the object itself is the record (the first one under the
prefix, by name, ends the wait, whenever it was written).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import JsonValue, TypeAdapter

from orchestrator.adapters import name_prefix
from orchestrator.context import flow_run
from orchestrator.contracts import (
    FlowSpec,
    GcsSource,
    LiteralValue,
    NamedSource,
    PubSubSource,
    Since,
    WaitEvent,
    WaitSource,
)
from orchestrator.errors import ConflictError, NotFoundError, TransientError
from orchestrator.io import current_blobs, current_place, local_blobs
from orchestrator.ports import BlobStore
from orchestrator.runtime import (
    Deferred,
    Runtime,
    deferrable,
    event_name,
    mailbox_folder,
    mailbox_marker,
    stamp,
)
from orchestrator.sdk import task
from orchestrator.waits._nodes import EVENT_POLL_S, WaitKind, later, left, node, now

SOURCE: TypeAdapter[WaitSource] = TypeAdapter(WaitSource)
PULL_BATCH = 100


def pubsub_topic(topic: str) -> PubSubSource:
    return PubSubSource(topic=topic)


def gcs_object(bucket: str, prefix: str = "") -> GcsSource:
    return GcsSource(bucket=bucket, prefix=prefix)


def kumoflow_event(name: str) -> NamedSource:
    return NamedSource(name=name)


def source_key(source: WaitSource) -> str:
    if isinstance(source, PubSubSource):
        return f"pubsub/{source.topic}"
    if isinstance(source, GcsSource):
        return f"gcs/{source.bucket}/{source.prefix}"
    return f"event/{source.name}"


def _digest(event_id: str) -> str:
    return hashlib.sha256(event_id.encode()).hexdigest()[:24]


def record(blobs: BlobStore, bucket: str, event: WaitEvent) -> bool:
    """Keep `event` in the mailbox once; False when its id was recorded before (a duplicate:
    the first record stands, and is completed if a crash left it half written)."""
    marker = mailbox_marker(bucket, event.source, _digest(event.id))
    try:
        event = WaitEvent.model_validate_json(blobs.get(marker))
        fresh = False
    except NotFoundError:
        fresh = True
        try:
            blobs.put(marker, event.model_dump_json().encode(), "application/json")
        except ConflictError:  # another instance recorded it just now: theirs stands
            event, fresh = WaitEvent.model_validate_json(blobs.get(marker)), False
    data = event.model_dump_json().encode()
    name = event_name(bucket, event.source, event.at, _digest(event.id))
    blobs.put(name, data, "application/json")
    return fresh


def matches(pattern: JsonValue, value: JsonValue) -> bool:
    """`pattern` as a subset of `value`: each key of a dict pattern present and matching,
    anything else equal."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches(v, value[k]) for k, v in pattern.items()
        )
    return pattern == value


def _first(
    blobs: BlobStore, folder: str, since: str, match: dict[str, JsonValue] | None
) -> WaitEvent | None:
    for uri in blobs.list_uris(folder):
        if uri[len(folder) :] < since:
            continue
        event = WaitEvent.model_validate_json(blobs.get(uri))
        if match is None or matches(match, event.model_dump(mode="json")):
            return event
    return None


def _first_object(blobs: BlobStore, source: GcsSource) -> WaitEvent | None:
    for uri in blobs.list_uris(f"gs://{source.bucket}/{source.prefix}"):
        name = uri[len(f"gs://{source.bucket}/") :]
        data: JsonValue = {"uri": uri, "bucket": source.bucket, "name": name}
        return WaitEvent(source=source_key(source), id=uri, at=now(), data=data)
    return None


def _message_event(topic: str, message: Any) -> WaitEvent:
    raw: bytes = message.data
    data: JsonValue
    try:
        text = raw.decode()
        data = json.loads(text) if text else None
    except UnicodeDecodeError:
        data = base64.b64encode(raw).decode()
    except ValueError:
        data = text
    at = message.publish_time
    return WaitEvent(
        source=f"pubsub/{topic}",
        id=message.message_id,
        at=datetime.fromtimestamp(at.timestamp(), tz=UTC) if at else now(),
        data=data,
        attributes=dict(message.attributes),
    )


WAIT_REF = "orchestrator.waits._events:wait_for_event_node"


def subscription_name(topic: str) -> str:
    """`<name prefix>-wait-<topic>`, as infra/waits.tf declares it."""
    return f"{name_prefix()}-wait-{topic}"


def wait_topics(spec: FlowSpec) -> set[str]:
    """The Pub/Sub topics the flow (and its subflows) waits on: what its deploy declares a
    `<prefix>-wait-TOPIC` subscription for (infra/waits.tf)."""
    found: set[str] = set()
    for planned in spec.nodes:
        arg = planned.args.get("source")
        if planned.task == WAIT_REF and isinstance(arg, LiteralValue):
            source = SOURCE.validate_python(arg.value)
            if isinstance(source, PubSubSource):
                found.add(source.topic)
    for child in spec.subflows.values():
        found |= wait_topics(child)
    return found


@functools.cache
def _subscriber() -> Any:
    """One client per process: a check runs every second per waiting node on the stack."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    return pubsub_v1.SubscriberClient()


@functools.cache
def _subscription(topic: str) -> str:
    """The shared pull subscription of waits on `topic`: declared by the deploy's Terraform
    in the cloud (functions may not create subscriptions there), created here when missing
    and allowed (the local stack); asked once per process."""
    from google.api_core import exceptions as gexc

    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "kumoflow-local")
    path: str = _subscriber().subscription_path(project, subscription_name(topic))
    try:
        _subscriber().create_subscription(
            request={"name": path, "topic": f"projects/{project}/topics/{topic}"}
        )
    except (gexc.AlreadyExists, gexc.PermissionDenied):
        pass  # declared by the deploy (or by an earlier wait); a pull names it if missing
    except gexc.NotFound as e:
        raise NotFoundError(f"topic {topic!r} does not exist: the flow must declare it") from e
    return path


def drain(blobs: BlobStore, bucket: str, topic: str) -> int:
    """Record the messages waiting on the topic's wait subscription; the number recorded.
    Runs only against a real Pub/Sub (the emulator or Google's): in memory the mailbox is fed
    by `send_event`."""
    from google.api_core import exceptions as gexc

    client, path = _subscriber(), _subscription(topic)
    try:
        reply = client.pull(
            request={"subscription": path, "max_messages": PULL_BATCH, "return_immediately": True},
            timeout=10.0,
        )
    except gexc.DeadlineExceeded:
        return 0
    except gexc.NotFound as e:  # deleted since this process asked: make it again next time
        _subscription.cache_clear()
        raise TransientError(f"pulling {path}: {e}") from e
    except (gexc.ServiceUnavailable, gexc.InternalServerError) as e:
        raise TransientError(f"pulling {path}: {e}") from e
    acks = []
    for received in reply.received_messages:
        record(blobs, bucket, _message_event(topic, received.message))
        acks.append(received.ack_id)
    if acks:
        client.acknowledge(request={"subscription": path, "ack_ids": acks})
    return len(acks)


def _check(handle: dict[str, JsonValue]) -> Deferred | dict[str, JsonValue] | None:
    source = SOURCE.validate_python(handle["source"])
    blobs = current_blobs()
    _, bucket = current_place()
    if isinstance(source, GcsSource):
        found = _first_object(blobs, source)
    else:
        if isinstance(source, PubSubSource) and not local_blobs():
            drain(blobs, bucket, source.topic)
        match = handle.get("match")
        found = _first(
            blobs,
            mailbox_folder(bucket, source_key(source)),
            str(handle["since"]),
            match if isinstance(match, dict) else None,
        )
    if found is not None:
        return found.model_dump(mode="json")
    if left(handle) == 0:
        return None  # timed out: the wait's result is None
    return later(handle, EVENT_POLL_S)


@task(name="wait-for-event")
@deferrable(_check)
def wait_for_event_node(
    source: dict[str, JsonValue],
    match: dict[str, JsonValue] | None,
    timeout: float | None,
    since: str,
) -> Deferred | dict[str, JsonValue] | None:
    """The node behind `wait_for_event`."""
    parsed = SOURCE.validate_python(source)
    start = now()
    if Since(since) is Since.RUN_START and flow_run.scheduled_start_time is not None:
        start = min(start, flow_run.scheduled_start_time)
    handle: dict[str, JsonValue] = {
        "wait": WaitKind.EVENT.value,
        "source": parsed.model_dump(mode="json"),
        "source_key": source_key(parsed),
        "match": match,
        "since": stamp(start),
        "deadline": None if timeout is None else (now() + timedelta(seconds=timeout)).isoformat(),
    }
    if isinstance(parsed, PubSubSource) and not local_blobs():
        _subscription(parsed.topic)  # from now on its messages are kept
    return _check(handle)


def wait_for_event(
    source: PubSubSource | GcsSource | NamedSource,
    *,
    match: dict[str, Any] | None = None,
    timeout: float | None = None,
    since: Since | Any = Since.WAIT_START,
    wait_for: Any = None,
) -> Any:
    """In a flow body: a node that ends with the first event of `source` that `match`es
    (a subset of the event's JSON: `{"data": {...}}`, `{"attributes": {...}}`), as a
    WaitEvent's JSON (id, at, data, attributes). After `timeout` seconds without one, its
    result is None. `since=Since.RUN_START` takes events from the run's start on (an event
    that came before the wait began is not lost)."""
    return node(
        wait_for_event_node,
        "wait_for_event",
        {
            "source": source.model_dump(mode="json"),
            "match": match,
            "timeout": timeout,
            "since": Since(since).value if isinstance(since, str) else since,
            "wait_for": wait_for,
        },
    )


def send_event(
    source: NamedSource | PubSubSource,
    data: JsonValue = None,
    *,
    event_id: str,
    attributes: dict[str, str] | None = None,
    rt: Runtime | None = None,
) -> bool:
    """Put one event in the mailbox (kumoflow's own events; in memory, a Pub/Sub message):
    every wait on `source` may take it. `event_id` identifies it: sending it again records
    nothing (False). From task code the running runtime's stores are used, else `rt`'s."""
    clock, bucket = (rt.clock, rt.results_bucket) if rt else current_place()
    event = WaitEvent(
        source=source_key(source),
        id=event_id,
        at=clock.now(),
        data=data,
        attributes=attributes or {},
    )
    return record(rt.blobs if rt else current_blobs(), bucket, event)
