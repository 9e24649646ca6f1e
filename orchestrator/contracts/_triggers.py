"""What starts runs: trigger declarations (part of a FlowSpec) and the objects flows receive."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from ._options import Frozen


class GcsObject(BaseModel):
    """The object whose upload started a run (from a finalize event or notification)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    bucket: str
    name: str
    generation: int
    size: int = 0
    content_type: str | None = Field(default=None, alias="contentType")
    md5_hash: str | None = Field(default=None, alias="md5Hash")
    crc32c: str | None = None
    time_created: datetime | None = Field(default=None, alias="timeCreated")
    updated: datetime | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


class PubSubMessage(BaseModel):
    """A raw message that started a run, for flows that take messages rather than params."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str
    message_id: str
    data: str | None = None  # the data as text when it is UTF-8
    data_base64: str
    attributes: dict[str, str] = Field(default_factory=dict)
    publish_time: datetime | None = None


class MatchOp(StrEnum):
    EQ = "eq"  # the value at the path equals `value`
    PREFIX = "prefix"  # the value at the path is a string starting with `value`
    IN = "in"  # the value at the path is one of `value` (a list)


class Match(Frozen):
    """One condition on a message's JSON body, as data (never code): the value at a dotted
    `path` ("order.region"; a list index is a number: "items.0.sku") compared with `value`."""

    path: str = Field(min_length=1, pattern=r"^[^.]+(\.[^.]+)*$")
    op: MatchOp = MatchOp.EQ
    value: JsonValue

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.op is MatchOp.PREFIX and not isinstance(self.value, str):
            raise ValueError(f"match on {self.path!r}: op 'prefix' takes a string value")
        if self.op is MatchOp.IN and not isinstance(self.value, list):
            raise ValueError(f"match on {self.path!r}: op 'in' takes a list of values")
        return self


class Batch(Frozen):
    """One run over up to `size` events, or what arrived within `seconds` of the first."""

    size: int = Field(ge=1, le=1000)
    seconds: float = Field(gt=0, le=86400)


class Bursts(Frozen):
    """What a trigger does with a burst: one run per event (neither), one run for the last
    event of a quiet spell of `debounce` seconds, or one run per `batch`."""

    debounce: float | None = Field(default=None, gt=0, le=86400)
    batch: Batch | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if self.debounce is not None and self.batch is not None:
            raise ValueError("a trigger takes debounce= or batch=, not both")
        return self

    @property
    def windowed(self) -> bool:
        return self.debounce is not None or self.batch is not None


class GcsTrigger(Bursts):
    kind: Literal["gcs"] = "gcs"
    bucket: str
    prefix: str = ""
    suffix: str = ""
    glob: str | None = None  # fnmatch pattern on the object name, e.g. "incoming/*.json"
    param: str  # the flow parameter that receives the GcsObject (a list of them with batch=)


class PubSubTrigger(Bursts):
    kind: Literal["pubsub"] = "pubsub"
    topic: str
    message_param: str | None = None  # a PubSubMessage parameter, if the flow has one
    # Kept only when every attribute named has that value (also the subscription's filter in
    # Terraform) and every body condition holds.
    attributes: dict[str, str] = Field(default_factory=dict)
    match: tuple[Match, ...] = ()


class ScheduleTrigger(Frozen):
    kind: Literal["schedule"] = "schedule"
    cron: str
    timezone: str = "UTC"
    params: dict[str, JsonValue] = Field(default_factory=dict)


TriggerSpec = Annotated[GcsTrigger | PubSubTrigger | ScheduleTrigger, Field(discriminator="kind")]


def describe_trigger(t: GcsTrigger | PubSubTrigger | ScheduleTrigger) -> str:
    """One line for `kumoflow deploy`: what starts the flow, its filter and its windows."""
    if isinstance(t, ScheduleTrigger):
        return f"schedule {t.cron} {t.timezone}"
    if isinstance(t, GcsTrigger):
        parts = [f"gcs gs://{t.bucket}/{t.prefix}*{t.suffix}"]
        if t.glob is not None:
            parts.append(f"glob {t.glob}")
    else:
        parts = [f"pubsub {t.topic}"]
        parts += [f"attribute {k}={v}" for k, v in sorted(t.attributes.items())]
        parts += [f"body {m.path} {m.op.value} {json.dumps(m.value)}" for m in t.match]
    if t.debounce is not None:
        parts.append(f"debounce {t.debounce:g}s")
    if t.batch is not None:
        parts.append(f"batch {t.batch.size} or {t.batch.seconds:g}s")
    return " ".join(parts[:1]) + "".join(f" [{p}]" for p in parts[1:])
