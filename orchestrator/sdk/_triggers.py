"""Trigger declarations for `@flow(triggers=[...])`, checked when the flow compiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from orchestrator.contracts import (
    Batch,
    FlowParam,
    GcsTrigger,
    Match,
    PubSubTrigger,
    ScheduleTrigger,
    TriggerSpec,
)
from orchestrator.errors import FlowDefinitionError


@dataclass(frozen=True)
class Trigger:
    kind: str
    options: dict[str, Any] = field(default_factory=dict)


def on_gcs_finalize(
    bucket: str,
    prefix: str = "",
    suffix: str = "",
    glob: str | None = None,
    param: str | None = None,
    *,
    debounce: float | None = None,
    batch: Batch | tuple[int, float] | None = None,
) -> Trigger:
    """Run when an object is written (finalized) in `bucket` and its name matches.

    `debounce=S`: one run for the last object of a burst, once S seconds pass with none.
    `batch=(N, T)`: one run over up to N objects or those of T seconds, the parameter then a
    `list[GcsObject]`."""
    return Trigger(
        "gcs",
        {
            "bucket": bucket,
            "prefix": prefix,
            "suffix": suffix,
            "glob": glob,
            "param": param,
            "debounce": debounce,
            "batch": batch,
        },
    )


def on_pubsub(
    topic: str,
    *,
    attributes: dict[str, str] | None = None,
    match: list[Match | dict[str, Any]] | None = None,
    debounce: float | None = None,
    batch: Batch | tuple[int, float] | None = None,
) -> Trigger:
    """Run for each message on `topic`: its JSON data and attributes are the params.

    `attributes={"k": "v"}` keeps only messages with those attributes; `match=[{"path":
    "order.region", "op": "in", "value": ["eu", "us"]}]` only those whose JSON body satisfies
    every condition (ops: eq, prefix, in). `debounce=` and `batch=` as on_gcs_finalize (a
    batch fills a `list[PubSubMessage]` parameter)."""
    return Trigger(
        "pubsub",
        {
            "topic": topic,
            "attributes": attributes or {},
            "match": match or [],
            "debounce": debounce,
            "batch": batch,
        },
    )


def _bursts(
    flow: str, o: dict[str, Any], params: tuple[FlowParam, ...], param: str | None
) -> dict[str, Any]:
    """The trigger's debounce/batch settings; a batch needs a list parameter to fill."""
    batch = o["batch"]
    if isinstance(batch, tuple):
        batch = {"size": batch[0], "seconds": batch[1]}
    if batch is not None:
        annotation = next((p.annotation for p in params if p.name == param), None) or ""
        if param is None or not annotation.startswith(("list[", "List[")):
            raise FlowDefinitionError(
                f"flow {flow!r}: batch= passes the events as a list: annotate the parameter "
                "that receives them list[GcsObject] (or list[PubSubMessage])"
            )
    return {"debounce": o["debounce"], "batch": batch}


def on_schedule(cron: str, timezone: str = "UTC", params: dict[str, Any] | None = None) -> Trigger:
    """Run on a cron schedule (Cloud Scheduler in the cloud, the local scheduler on the stack)."""
    return Trigger("schedule", {"cron": cron, "timezone": timezone, "params": params or {}})


def _typed(params: tuple[FlowParam, ...], type_name: str) -> str | None:
    found = [p.name for p in params if p.annotation and type_name in p.annotation]
    return found[0] if found else None


def compile_triggers(
    flow: str, triggers: list[Trigger], params: tuple[FlowParam, ...]
) -> tuple[TriggerSpec, ...]:
    names = {p.name for p in params}
    out: list[TriggerSpec] = []
    for t in triggers:
        if not isinstance(t, Trigger):
            raise FlowDefinitionError(
                f"flow {flow!r}: triggers take on_gcs_finalize(...), "
                f"on_pubsub(...) or on_schedule(...), not {t!r}"
            )
        o = t.options
        if t.kind == "gcs":
            param = o["param"] or _typed(params, "GcsObject")
            if param is None or param not in names:
                raise FlowDefinitionError(
                    f"flow {flow!r}: on_gcs_finalize needs a parameter to receive the object: "
                    "annotate one as GcsObject (or pass param=NAME)"
                )
            out.append(
                _checked(
                    flow,
                    GcsTrigger,
                    bucket=o["bucket"],
                    prefix=o["prefix"],
                    suffix=o["suffix"],
                    glob=o["glob"],
                    param=param,
                    **_bursts(flow, o, params, param),
                )
            )
        elif t.kind == "pubsub":
            message_param = _typed(params, "PubSubMessage")
            out.append(
                _checked(
                    flow,
                    PubSubTrigger,
                    topic=o["topic"],
                    message_param=message_param,
                    attributes=o["attributes"],
                    match=tuple(o["match"]),
                    **_bursts(flow, o, params, message_param),
                )
            )
        else:
            out.append(_schedule(flow, o, names))
    return tuple(out)


def _checked(flow: str, model: type[Any], **fields: Any) -> Any:
    """The trigger contract, or a definition error naming what is wrong with it."""
    try:
        return model(**fields)
    except ValidationError as e:
        what = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'trigger'}: {err['msg']}" for err in e.errors()
        )
        raise FlowDefinitionError(
            f"flow {flow!r}: trigger {fields.get('topic') or fields.get('bucket')!r}: {what}"
        ) from e


def _schedule(flow: str, o: dict[str, Any], names: set[str]) -> ScheduleTrigger:
    from croniter import croniter

    if not croniter.is_valid(o["cron"]):
        raise FlowDefinitionError(
            f"flow {flow!r}: cron expression {o['cron']!r} does not parse; "
            "use five fields: minute hour day-of-month month day-of-week"
        )
    try:
        ZoneInfo(o["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise FlowDefinitionError(
            f"flow {flow!r}: unknown time zone {o['timezone']!r}; use an "
            "IANA name such as 'Asia/Tokyo'"
        ) from None
    unknown = sorted(set(o["params"]) - names)
    if unknown:
        raise FlowDefinitionError(
            f"flow {flow!r}: on_schedule params {unknown} are not "
            f"parameters of the flow ({', '.join(sorted(names))})"
        )
    return ScheduleTrigger(cron=o["cron"], timezone=o["timezone"], params=o["params"])
