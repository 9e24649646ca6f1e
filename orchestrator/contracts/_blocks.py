"""Blocks: named, saved configuration (credentials, buckets), one document each."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, JsonValue, SecretStr, StringConstraints

from ._options import Frozen

# How a block travels in a DAG, a handle or another block: {"$block": "kind/name"}.
BLOCK_REF = "$block"
# Kinds and names end up in document ids and file names: a safe alphabet.
BlockName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")]


class StoredBlock(Frozen):
    kind: BlockName  # "gcp-credentials", "gcs-bucket"
    name: BlockName
    data: dict[str, JsonValue]  # the fields without their secrets
    # Secret field -> where its value is: "secretmanager:projects/P/secrets/S/versions/N" in
    # the cloud, or "inline:<json>" in a local store. Never shown, logged or put in a run.
    secrets: dict[str, str] = Field(default_factory=dict)
    saved_at: datetime


# Notification blocks: what the worker reads back (orchestrator.notifications saves them).
WEBHOOK_KIND = "notification-webhook"
SMTP_KIND = "notification-smtp"


class WebhookFormat(StrEnum):
    JSON = "json"  # the RunNotification itself
    SLACK = "slack"  # {"text": ...}, Slack's incoming webhooks
    TEAMS = "teams"  # {"text": ...}, Teams' incoming webhooks


class WebhookSettings(Frozen):
    url: SecretStr  # a webhook URL is a credential (Slack's and Teams' are)
    format: WebhookFormat = WebhookFormat.JSON


class SmtpSettings(Frozen):
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
