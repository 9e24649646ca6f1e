"""What a flow waits for (orchestrator.waits): the sources of events and the events themselves,
as a waiting node's result and as the records of the event mailbox in the results bucket."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, JsonValue

from ._options import Frozen


class PubSubSource(Frozen):
    """Messages on a Pub/Sub topic (the flow declares it; see orchestrator.waits)."""

    kind: Literal["pubsub"] = "pubsub"
    topic: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9._~%+-]{2,254}$")


class GcsSource(Frozen):
    """An object under `prefix` in `bucket`: the first one there (by name) ends the wait."""

    kind: Literal["gcs"] = "gcs"
    bucket: str = Field(min_length=3)
    prefix: str = ""


class NamedSource(Frozen):
    """kumoflow's own events: `orchestrator.waits.send_event(name, ...)`, `kumoflow events send`."""

    kind: Literal["event"] = "event"
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


WaitSource = Annotated[PubSubSource | GcsSource | NamedSource, Field(discriminator="kind")]


class Since(StrEnum):
    """The oldest event a wait takes: from when it starts waiting, or from its run's start."""

    WAIT_START = "wait_start"
    RUN_START = "run_start"


class WaitEvent(Frozen):
    """One event, as a wait returns it: `data` is the message's JSON (its text when it is not
    JSON; None when empty), `attributes` its Pub/Sub attributes; a GCS object's event carries
    {"uri", "bucket", "name"} as data and the URI as id."""

    source: str  # "pubsub/TOPIC", "gcs/BUCKET/PREFIX", "event/NAME"
    id: str
    at: datetime
    data: JsonValue = None
    attributes: dict[str, str] = Field(default_factory=dict)
