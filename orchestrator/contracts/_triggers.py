"""What starts runs: trigger declarations (part of a FlowSpec) and the objects flows receive."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

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


class GcsTrigger(Frozen):
    kind: Literal["gcs"] = "gcs"
    bucket: str
    prefix: str = ""
    suffix: str = ""
    glob: str | None = None  # fnmatch pattern on the object name, e.g. "incoming/*.json"
    param: str  # the flow parameter that receives the GcsObject


class PubSubTrigger(Frozen):
    kind: Literal["pubsub"] = "pubsub"
    topic: str
    message_param: str | None = None  # a PubSubMessage parameter, if the flow has one


class ScheduleTrigger(Frozen):
    kind: Literal["schedule"] = "schedule"
    cron: str
    timezone: str = "UTC"
    params: dict[str, JsonValue] = Field(default_factory=dict)


TriggerSpec = Annotated[GcsTrigger | PubSubTrigger | ScheduleTrigger, Field(discriminator="kind")]
