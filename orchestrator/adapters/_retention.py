"""Retention of finished work in Firestore: a TTL field the store writes, Firestore deletes by.

With `KUMOFLOW_RETENTION_DAYS` set (Terraform sets it; the local stack does not), the store
writes `expire_at` on a finished run (ended + retention), on every task record write (written +
retention) and on each dead letter (received + retention). Firestore's TTL policies on that
field (infra/firestore.tf) delete the documents within about a day of their expiry. A running
run's document has `expire_at` null (never expires); its task records expire only if nothing
writes them for the whole retention, so keep retention above the longest run.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

TTL_FIELD = "expire_at"
RETENTION_ENV = "KUMOFLOW_RETENTION_DAYS"


def retention_from_env() -> timedelta | None:
    raw = os.environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return None
    days = float(raw)
    return timedelta(days=days) if days > 0 else None


def expiry(since: datetime | None, retention: timedelta | None) -> datetime | None:
    return None if since is None or retention is None else since + retention
