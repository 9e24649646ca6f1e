"""Notification blocks: where a flow's (or a deployment's) failures are told.

    WebhookNotification(url="https://hooks.slack.com/...", format="slack").save("ops")
    @flow(notify=[WebhookNotification.load("ops")])   # or notify=["notification-webhook/ops"]

The URL (a credential for Slack and Teams) and the SMTP password are secrets: saved apart from
the block (Secret Manager in the cloud), never in a DAG or a run. A worker reads them when a
failure is told (orchestrator.runtime's notifications), after the run's end is committed.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Secret

from orchestrator.contracts import SMTP_KIND, WEBHOOK_KIND, WebhookFormat
from orchestrator.gcp._blocks import Block


class WebhookNotification(Block):
    """POSTs a run's failure: the RunNotification JSON (format "json"), or a text for Slack's
    or Teams' incoming webhooks ("slack", "teams")."""

    kind: ClassVar[str] = WEBHOOK_KIND
    secret_fields: ClassVar[tuple[str, ...]] = ("url",)

    url: Secret[str] | None = None
    format: WebhookFormat = WebhookFormat.JSON


class SmtpNotification(Block):
    """Emails a run's failure through an SMTP server (STARTTLS unless told otherwise)."""

    kind: ClassVar[str] = SMTP_KIND
    secret_fields: ClassVar[tuple[str, ...]] = ("password",)

    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    username: str | None = None
    password: Secret[str] | None = None
    starttls: bool = True
