"""Notification blocks told of a run's failure: a webhook (generic JSON, Slack, Teams) or an
email through an SMTP server. The blocks are saved with `orchestrator.notifications` (their URL
and password as secrets); here they are read as stored, by "KIND/NAME", when a failure is told.
"""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any

from pydantic import JsonValue

from orchestrator.adapters import block_store_from_env
from orchestrator.contracts import (
    SMTP_KIND,
    WEBHOOK_KIND,
    RunNotification,
    SmtpSettings,
    WebhookFormat,
    WebhookSettings,
)
from orchestrator.errors import BadInputError, NotFoundError, TransientError
from orchestrator.runtime._runtime import Runtime

TIMEOUT_S = 10.0


def notify(rt: Runtime, ref: str, body: RunNotification) -> None:
    """Tell block `ref` ("KIND/NAME") of `body`; raises what went wrong."""
    kind, _, name = ref.partition("/")
    values = _stored(rt, kind, name)
    if kind == WEBHOOK_KIND:
        post(WebhookSettings.model_validate(values), body)
    elif kind == SMTP_KIND:
        send_mail(SmtpSettings.model_validate(values), body)
    else:
        raise BadInputError(f"{ref!r} is not a notification block ({WEBHOOK_KIND}, {SMTP_KIND})")


def _stored(rt: Runtime, kind: str, name: str) -> dict[str, Any]:
    """The block's fields and secrets, from the runtime's block store (else the one the
    environment names, as `Block.load` in task code reads)."""
    stored = (rt.blocks or block_store_from_env()).get_block(kind, name)
    if stored is None:
        raise NotFoundError(f"no {kind} block named {name!r}")
    values: dict[str, Any] = dict(stored.data)
    for field, where in stored.secrets.items():
        values[field] = json.loads(where.removeprefix("inline:"))
    return values


def payload(settings: WebhookSettings, body: RunNotification) -> JsonValue:
    """What the webhook receives: the notification itself, or a chat message made of it."""
    if settings.format is WebhookFormat.JSON:
        dumped: JsonValue = body.model_dump(mode="json")
        return dumped
    return {"text": body.text}  # Slack's and Teams' incoming webhooks both take a text


def post(settings: WebhookSettings, body: RunNotification) -> None:
    request = urllib.request.Request(
        settings.url.get_secret_value(),
        data=json.dumps(payload(settings, body)).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "kumoflow"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            response.read()
    except urllib.error.HTTPError as e:  # the receiver answered, refusing
        e.close()
        raise TransientError(f"webhook POST refused: HTTP {e.code}") from e
    except OSError as e:  # the receiver is away
        raise TransientError(f"webhook POST failed: {e}") from e


def send_mail(settings: SmtpSettings, body: RunNotification) -> None:
    message = EmailMessage()
    message["Subject"] = body.text[:200]
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message.set_content(json.dumps(body.model_dump(mode="json"), indent=2))
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=TIMEOUT_S) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                password = settings.password.get_secret_value() if settings.password else ""
                smtp.login(settings.username, password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as e:
        raise TransientError(f"email through {settings.host}:{settings.port} failed: {e}") from e
