"""The edge every function shares: unwrap the Pub/Sub push, decode the contract, classify errors.

Bad input is recorded as a dead letter and acknowledged (the function returns normally, so 2xx);
transient failures raise, so the platform answers non-2xx and Pub/Sub redelivers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from orchestrator.adapters import from_message, peek_context, unwrap_pubsub
from orchestrator.contracts import (
    DEAD_LETTER_REASON_CHARS,
    DeadLetter,
    Envelope,
    RunRequested,
    clip,
)
from orchestrator.errors import (
    BadInputError,
    KumoflowError,
    NotFoundError,
    ParameterError,
    SerializationError,
)
from orchestrator.ports import EventBus
from orchestrator.runtime import (
    LOGGER,
    MASK,
    Runtime,
    cloud_runtime,
    configure_json_logging,
    masked,
    secret_params,
)

# What redelivery cannot fix. A RecursionError comes from input nested too deeply somewhere
# past the decoders that name it (the same bytes fail the same way on every delivery).
REJECTED = (
    BadInputError,
    NotFoundError,
    ParameterError,
    SerializationError,
    ValidationError,
    RecursionError,
)
_lock = threading.Lock()
_built: list[Runtime] = []  # one per instance


def runtime() -> Runtime:
    """Adapters built once per instance from the environment (warm invocations reuse them)."""
    with _lock:
        if not _built:
            configure_json_logging()
            project = os.environ.get("GOOGLE_CLOUD_PROJECT", "kumoflow-local")
            granted = os.environ.get("KUMOFLOW_PUBLISHES")
            topics = frozenset(t for t in (granted or "").split(",") if t)
            rt = cloud_runtime(
                project,
                source=f"//kumoflow.dev/projects/{project}",
                worker_id=os.environ.get("K_REVISION", "local") + f"/{os.getpid()}",
                bus=(lambda bus: GrantedBus(bus, topics)) if granted is not None else None,
                fault=_faults(os.environ.get("KUMOFLOW_FAULTS", "")),
            )
            _built.append(rt)
        return _built[0]


class GrantedBus:
    """The bus as IAM lets this function use it (KUMOFLOW_PUBLISHES: the topics Terraform grants
    it publisher on, from the wiring). The local stack sets it too, so a publish the cloud would
    refuse fails on the emulators, named, instead of in production."""

    def __init__(self, bus: EventBus, topics: frozenset[str]) -> None:
        self.inner = bus
        self.topics = topics

    def publish(self, topic: str, event: Envelope) -> None:
        self._check(topic)
        self.inner.publish(topic, event)

    def publish_all(self, topic: str, events: Sequence[Envelope]) -> None:
        self._check(topic)
        self.inner.publish_all(topic, events)

    def _check(self, topic: str) -> None:
        if topic not in self.topics:
            name = os.environ.get("K_SERVICE", "this function")
            raise KumoflowError(
                f"{name} may publish only to {sorted(self.topics)}, not {topic}: add the topic "
                "to its `publishes` in orchestrator/local/_wiring.py (Terraform grants those)"
            )


def use_runtime(rt: Runtime | None) -> None:
    """Serve this instance from `rt` (tests, embedding); None rebuilds from the environment."""
    with _lock:
        _built.clear()
        if rt is not None:
            _built.append(rt)


def _faults(spec: str) -> Callable[[str], None] | None:
    """`point:N`: the process dies at every Nth time it passes `point` (crash tests only)."""
    if not spec:
        return None
    point, _, every = spec.partition(":")
    period = int(every or "1")
    seen = {"n": 0}

    def fault(name: str) -> None:
        if name == point:
            seen["n"] += 1
            if seen["n"] % period == 0:
                LOGGER.warning("fault injected at %s: process exits", name)
                # A crash, not an exception: no cleanup, no response (like an OOM kill).
                os.kill(os.getpid(), signal.SIGKILL)

    return fault


@dataclass
class Seen:
    """What a handler learned of its input before refusing it: the dead letter names the input
    as precisely as that (raw bytes, message attributes, event id and type, decoded event)."""

    raw: bytes = b""
    attributes: dict[str, str] | None = None  # None: the Pub/Sub message was never unwrapped
    id: str | None = None
    type: str | None = None
    event: Envelope | None = None

    def peeked(self, raw: bytes, attributes: dict[str, str]) -> None:
        """A message unwrapped: its bytes, attributes, and the id and type it seems to have."""
        context = peek_context(raw, attributes)
        self.raw, self.attributes = raw, attributes
        self.id, self.type = context.get("id", self.id), context.get("type", self.type)


def handle(function: str, cloud_event: Any, handler: Callable[[Runtime, Envelope], None]) -> None:
    """Decode `cloud_event` (a messagePublished CloudEvent) and run `handler` on our event."""

    def body(rt: Runtime, seen: Seen) -> None:
        attrs = cloud_event.get_attributes()
        raw, message_attrs, _ = unwrap_pubsub(str(attrs.get("type")), cloud_event.data)
        seen.peeked(raw, message_attrs)
        seen.event = event = from_message(raw, message_attrs)
        handler(rt, event)

    guarded(function, cloud_event, body)


def guarded(function: str, cloud_event: Any, body: Callable[[Runtime, Seen], None]) -> None:
    """Run `body`; bad input becomes a dead letter and a normal return (2xx, no redelivery).

    `body` notes what it learns in `seen` (raw bytes, event id and type, decoded event) so the
    record names the input as precisely as it got."""
    rt = runtime()
    seen = Seen()
    try:
        body(rt, seen)
    except REJECTED as e:
        refused(rt, function, cloud_event, seen, e)


def refused(
    rt: Runtime,
    function: str,
    cloud_event: Any,
    seen: Seen,
    error: Exception,
    *,
    flow: str | None = None,
) -> None:
    """Record `error` as the dead letter of the input `seen` describes; `flow`: the one flow
    of the input's topic that refused it (a redrive then reaches that flow only)."""
    outer = cloud_event.get_attributes()
    outer_id = str(outer.get("id", ""))
    _, found, topic = str(outer.get("source", "")).rpartition("/topics/")
    reject(
        rt,
        function,
        error,
        event=seen.event,
        raw=seen.raw,
        event_id=seen.id or outer_id,
        event_type=seen.type,
        topic=topic if found and seen.attributes is not None else None,
        attributes=seen.attributes or {},
        flow=flow,
    )


def reject(
    rt: Runtime,
    function: str,
    error: Exception,
    *,
    event: Envelope | None,
    raw: bytes,
    event_id: str,
    event_type: str | None,
    topic: str | None = None,
    attributes: dict[str, str] | None = None,
    flow: str | None = None,
) -> None:
    event_id = event.id if event else event_id
    event_type = event.type if event else event_type
    # Redelivery of the same bad input overwrites one record instead of piling up (one per
    # refusing flow when flows of one topic refuse it each on its own).
    identity = f"{function}|{event_id}|{raw[:256]!r}" + (f"|{flow}" if flow else "")
    letter_id = hashlib.sha256(identity.encode()).hexdigest()[:32]
    reason = clip(f"{type(error).__name__}: {error}", DEAD_LETTER_REASON_CHARS)
    LOGGER.warning(
        "rejected input: %s",
        reason,
        extra={
            "function": function,
            "event_id": event_id,
            "reason": reason,
            "event_type": event_type,
            "run_id": getattr(event.data, "run_id", None) if event else None,
            "flow": flow,
        },
    )
    secret = _secret_names(rt, event)
    shown = _shown(raw, secret)
    kept = masked(attributes or {}, secret)
    rt.letters.record(
        DeadLetter(
            id=letter_id,
            received_at=rt.clock.now(),
            source=function,
            reason=reason,
            event_type=event_type,
            event_id=event_id or None,
            payload=shown,
            topic=topic,
            attributes=kept,
            flow=flow,
            exact=shown is not None and shown.encode() == raw and kept == (attributes or {}),
        )
    )


def _secret_names(rt: Runtime, event: Envelope | None) -> frozenset[str]:
    """The names whose values a record must not keep: the secret parameters of the flow a
    decoded run request names, and of every deployed flow (input that did not decode, or a
    trigger message, may be meant for any of them)."""
    names: set[str] = set()
    data = event.data if event is not None else None
    if isinstance(data, RunRequested):
        try:
            version = data.flow_version or rt.flows.latest_version(data.flow)
            if version:
                names |= secret_params(rt.spec(version))
        except KumoflowError:
            pass  # an unknown flow or version: the deployed flows below still count
    for spec in rt.flows.deployed():
        names |= secret_params(spec)
    return frozenset(names)


def _shown(raw: bytes, secret: frozenset[str]) -> str | None:
    """The rejected input as recorded: a JSON input has the value of every key named like a
    secret parameter masked, at any depth (params in a run request, a trigger message's
    body, a structured CloudEvent); the record clips it (DeadLetter). None: nothing to keep."""
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if not secret:
        return text
    hits: list[str] = []

    def hide(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = [k for k, _ in pairs if k in secret]
        hits.extend(found)
        return {k: MASK if k in secret else v for k, v in pairs}

    try:
        body = json.loads(text, object_pairs_hook=hide)
        return json.dumps(body, separators=(",", ":")) if hits else text
    except (ValueError, RecursionError):
        # Not JSON (or too deep to walk): no keys to go by. Kept only when no secret's name
        # is in it at all; otherwise withheld (the reason still says what was wrong).
        return None if any(name in text for name in secret) else text


def log_event(message: str, event: Envelope, level: int = logging.INFO, **fields: Any) -> None:
    data = event.data
    LOGGER.log(
        level,
        message,
        extra={
            "event_id": event.id,
            "event_type": event.type,
            "run_id": getattr(data, "run_id", None),
            "task": getattr(data, "key", None),
            "attempt": getattr(data, "attempt", None),
            **fields,
        },
    )
