"""Trigger events to run requests: GCS finalize, Pub/Sub messages and schedule fires.

Each run id derives from the event's identity (object#generation, message id, job + scheduled
time) and the flow, so a redelivered event starts nothing new while a new object generation does.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from orchestrator.contracts import (
    Bursts,
    FlowSpec,
    GcsObject,
    GcsTrigger,
    Match,
    MatchOp,
    PubSubMessage,
    PubSubTrigger,
    RunRequested,
    ScheduleTrigger,
    TriggerInfo,
    TriggerKind,
)
from orchestrator.engine import param_value
from orchestrator.errors import BadInputError
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._params import masked, refuse_blocks, secret_params
from orchestrator.runtime.control import Windowed, lane_id

JOB_ATTRIBUTE = "kumoflow-job"  # set on every scheduled message by the jobs deploy creates
# Set by `dlq redrive` on a message one flow of its topic refused: only that flow takes it (the
# others took it the first time). It narrows who starts; it never widens it.
FLOW_ATTRIBUTE = "kumoflow-flow"
# A publish time this far before a slot still belongs to it (clocks are not in lockstep).
EARLY_TOLERANCE = timedelta(seconds=5)


@dataclass(frozen=True)
class Deployed:
    version: str
    spec: FlowSpec


@dataclass(frozen=True)
class Refused:
    """One flow's refusal of an input the other flows on its topic may well take."""

    flow: str
    error: BadInputError


def for_flow(
    items: Sequence[RunRequested | Windowed | Refused], attributes: Mapping[str, str], where: str
) -> list[RunRequested | Windowed | Refused]:
    """`items` as the message targets them: all, or the one flow FLOW_ATTRIBUTE names."""
    target = attributes.get(FLOW_ATTRIBUTE)
    if target is None:
        return list(items)
    kept = [i for i in items if i.flow == target]
    if not kept:
        raise BadInputError(
            f"message targets flow {target!r} ({FLOW_ATTRIBUTE}), which {where} does not start"
        )
    return kept


def run_id(*identity: str) -> str:
    return hashlib.sha256("|".join(identity).encode()).hexdigest()[:24]


def requested_run_id(source: str, event_id: str) -> str:
    """The run id the run starter gives a run.requested that names none: from the event's
    identity (source and id), so a redelivered request starts nothing new and the publisher
    knows the id before the run exists."""
    return hashlib.sha256(f"{source}|{event_id}".encode()).hexdigest()[:20]


def job_name(flow: str, index: int) -> str:
    return f"kumoflow-{flow}-{index}"


def gcs_object(data: Any) -> GcsObject:
    if not isinstance(data, dict):
        raise BadInputError("a storage event's data must be a JSON object (the object resource)")
    try:
        return GcsObject.model_validate(data)
    except ValidationError as e:
        fields = ", ".join(".".join(map(str, err["loc"])) for err in e.errors()[:5])
        raise BadInputError(f"storage object resource is malformed ({fields})") from e


def object_mismatch(t: GcsTrigger, name: str) -> str | None:
    """Why trigger `t` (of the object's bucket) drops object `name`; None when it keeps it."""
    if not name.startswith(t.prefix):
        return f"name does not start with prefix {t.prefix!r}"
    if not name.endswith(t.suffix):
        return f"name does not end with suffix {t.suffix!r}"
    if t.glob is not None and not fnmatch.fnmatchcase(name, t.glob):
        return f"name does not match glob {t.glob!r}"
    return None


def message_mismatch(t: PubSubTrigger, msg: PubSubMessage) -> str | None:
    """Why trigger `t` drops the message; None when it keeps it."""
    for key, value in t.attributes.items():
        if msg.attributes.get(key) != value:
            return f"attribute {key!r} is {msg.attributes.get(key)!r}, not {value!r}"
    if not t.match:
        return None
    try:
        body: Any = json.loads(msg.data or "")
    except (ValueError, RecursionError):
        return "the body is not JSON, and the trigger matches on it"
    for m in t.match:
        if not _holds(m, body):
            return f"body at {m.path!r} does not satisfy {m.op.value} {m.value!r}"
    return None


_ABSENT = object()


def _holds(m: Match, body: Any) -> bool:
    value = body
    for part in m.path.split("."):
        if isinstance(value, dict):
            value = value.get(part, _ABSENT)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            value = _ABSENT
        if value is _ABSENT:
            return False
    if m.op is MatchOp.EQ:
        return bool(value == m.value)
    if m.op is MatchOp.PREFIX:
        return isinstance(value, str) and isinstance(m.value, str) and value.startswith(m.value)
    return isinstance(m.value, list) and value in m.value


def _dropped(flow: str, why: str, event_id: str) -> None:
    """A filter's drop: acknowledged and logged (not bad input, so no dead letter)."""
    LOGGER.info(
        "trigger filter dropped the event for flow %s: %s",
        flow,
        why,
        extra={"flow": flow, "event_id": event_id, "reason": why},
    )


def _windowed(
    d: Deployed, index: int, t: Bursts, req: RunRequested, item_param: str | None
) -> RunRequested | Windowed:
    """The request itself, or, for a trigger with debounce= or batch=, the event for its
    window (whose run starts when the window closes)."""
    if not t.windowed:
        return req
    lane = lane_id(d.spec.name, index)
    return Windowed(req, lane, debounce=t.debounce, batch=t.batch, item_param=item_param)


def requests_for_object(
    deployed: Sequence[Deployed], obj: GcsObject, event_id: str, *, quiet: bool = False
) -> list[RunRequested | Windowed]:
    triggers = [
        (d, i, t)
        for d in deployed
        for i, t in enumerate(d.spec.triggers)
        if isinstance(t, GcsTrigger) and t.bucket == obj.bucket
    ]
    if not triggers and not quiet:
        raise BadInputError(
            f"no deployed flow is triggered by bucket {obj.bucket!r}; deploy one "
            "with on_gcs_finalize(bucket=...) or remove the notification"
        )
    source = f"gs://{obj.bucket}/{obj.name}#{obj.generation}"
    out: list[RunRequested | Windowed] = []
    for d, i, t in triggers:
        why = object_mismatch(t, obj.name)
        if why is not None:
            _dropped(d.spec.name, f"{source}: {why}", event_id)
            continue
        req = RunRequested(
            flow=d.spec.name,
            flow_version=d.version,
            params={t.param: obj.model_dump(mode="json")},
            run_id=run_id("gcs", source, d.spec.name),
            trigger=TriggerInfo(kind=TriggerKind.GCS, source=source, event_id=event_id),
        )
        out.append(_windowed(d, i, t, req, t.param))
    return out


def message(
    topic: str,
    data: bytes,
    attributes: Mapping[str, str],
    message_id: str,
    publish_time: str | None,
) -> PubSubMessage:
    try:
        text: str | None = data.decode()
    except UnicodeDecodeError:
        text = None
    return PubSubMessage(
        topic=topic,
        message_id=message_id,
        data=text,
        data_base64=base64.b64encode(data).decode(),
        attributes=dict(attributes),
        publish_time=_time(publish_time),
    )


def requests_for_message(
    deployed: Sequence[Deployed], msg: PubSubMessage
) -> list[RunRequested | Windowed | Refused]:
    """A run request for each flow on the message's topic whose filter keeps it, or that
    flow's refusal (one flow refusing the message does not keep it from the others)."""
    matched = [
        (d, i, t)
        for d in deployed
        for i, t in enumerate(d.spec.triggers)
        if isinstance(t, PubSubTrigger) and t.topic == msg.topic
    ]
    if not matched:
        raise BadInputError(
            f"no deployed flow is triggered by topic {msg.topic!r}; deploy one "
            "with requests_for_message(topic=...)"
        )
    out: list[RunRequested | Windowed | Refused] = []
    for d, i, t in matched:
        why = message_mismatch(t, msg)
        if why is not None:
            _dropped(
                d.spec.name, f"message {msg.message_id} on {msg.topic!r}: {why}", msg.message_id
            )
            continue
        try:
            params = (
                {t.message_param: msg.model_dump(mode="json")}
                if t.message_param
                else _message_params(d.spec, msg)
            )
        except BadInputError as e:
            out.append(Refused(d.spec.name, e))
            continue
        req = RunRequested(
            flow=d.spec.name,
            flow_version=d.version,
            params=params,
            run_id=run_id("pubsub", msg.topic, msg.message_id, d.spec.name),
            trigger=TriggerInfo(
                kind=TriggerKind.PUBSUB,
                source=msg.topic,
                event_id=msg.message_id,
                # What started the run, for `runs show` and context.flow_run.trigger: an
                # attribute that is a secret parameter is masked (the run's params keep it).
                detail={"attributes": masked(msg.attributes, secret_params(d.spec))},
            ),
        )
        out.append(_windowed(d, i, t, req, t.message_param))
    return out


def _message_params(spec: FlowSpec, msg: PubSubMessage) -> dict[str, Any]:
    """Params from a JSON-object body, then from attributes named like parameters."""
    params: dict[str, Any] = {}
    if msg.data and msg.data.strip():
        try:
            body = json.loads(msg.data)
        except ValueError:
            body = None
        except RecursionError as e:
            raise BadInputError(
                f"message on {msg.topic!r} for flow {spec.name!r}: data is JSON nested too "
                "deeply to decode"
            ) from e
        if not isinstance(body, dict):
            raise BadInputError(
                f"message on {msg.topic!r} for flow {spec.name!r}: data must be a JSON object of "
                "params (or empty with params as attributes); to take raw messages, give the "
                "flow a parameter annotated PubSubMessage"
            )
        params.update(body)
    names = {p.name: p for p in spec.params}
    for key, value in msg.attributes.items():
        if key in names:
            params[key] = param_value(value, names[key].annotation)
    refuse_blocks(spec, params)
    return params


def requests_for_fire(
    deployed: Sequence[Deployed], job: str, fired_at: datetime, event_id: str
) -> list[RunRequested]:
    for d in deployed:
        schedules = [t for t in d.spec.triggers if isinstance(t, ScheduleTrigger)]
        for index, t in enumerate(schedules):
            if job_name(d.spec.name, index) == job:
                slot = scheduled_slot(t, fired_at)
                return [
                    RunRequested(
                        flow=d.spec.name,
                        flow_version=d.version,
                        params=dict(t.params),
                        run_id=run_id("schedule", job, slot.isoformat()),
                        trigger=TriggerInfo(
                            kind=TriggerKind.SCHEDULE,
                            source=job,
                            event_id=event_id,
                            detail={"scheduled_for": slot.isoformat()},
                        ),
                    )
                ]
    raise BadInputError(
        f"no deployed schedule is named {job!r}; redeploy its flow or delete the job"
    )


def scheduled_slot(t: ScheduleTrigger, fired_at: datetime) -> datetime:
    """The cron slot a fire belongs to: the latest at or before it, or one a few seconds ahead
    (clock skew between the scheduler and Pub/Sub's publish time)."""
    from croniter import croniter

    local = fired_at.astimezone(ZoneInfo(t.timezone))
    ahead: datetime = croniter(t.cron, local).get_next(datetime)
    if ahead.astimezone(UTC) - fired_at <= EARLY_TOLERANCE:
        return ahead.astimezone(UTC)
    slot: datetime = croniter(t.cron, local + timedelta(microseconds=1)).get_prev(datetime)
    return slot.astimezone(UTC)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise BadInputError(f"publishTime {value!r} is not RFC 3339") from e
