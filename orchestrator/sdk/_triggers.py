"""Trigger declarations for `@flow(triggers=[...])`, checked when the flow compiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.contracts import (
    FlowParam,
    GcsTrigger,
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
) -> Trigger:
    """Run when an object is written (finalized) in `bucket` and its name matches."""
    return Trigger(
        "gcs", {"bucket": bucket, "prefix": prefix, "suffix": suffix, "glob": glob, "param": param}
    )


def on_pubsub(topic: str) -> Trigger:
    """Run for each message on `topic`: its JSON data and attributes are the params."""
    return Trigger("pubsub", {"topic": topic})


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
                GcsTrigger(
                    bucket=o["bucket"],
                    prefix=o["prefix"],
                    suffix=o["suffix"],
                    glob=o["glob"],
                    param=param,
                )
            )
        elif t.kind == "pubsub":
            out.append(
                PubSubTrigger(topic=o["topic"], message_param=_typed(params, "PubSubMessage"))
            )
        else:
            out.append(_schedule(flow, o, names))
    return tuple(out)


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
