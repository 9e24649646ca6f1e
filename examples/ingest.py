"""A flow started by triggers: an upload, a message, or a nightly schedule."""

from __future__ import annotations

from orchestrator import GcsObject, flow, on_gcs_finalize, on_pubsub, on_schedule, task
from orchestrator.io import read_blob


@task(name="describe", retries=2, retry_delay_seconds=1)
def describe(obj: GcsObject | None, mode: str) -> str:
    if obj is None:
        return f"{mode}: nothing to ingest"
    data = read_blob(obj.uri)
    return f"{mode}: {obj.uri} generation {obj.generation}, {len(data)} bytes"


@flow(
    name="ingest",
    triggers=[
        on_gcs_finalize(bucket="inbox", prefix="incoming/", suffix=".json"),
        on_pubsub(topic="ingest-requests"),
        on_schedule(cron="0 3 * * *", timezone="Asia/Tokyo", params={"mode": "nightly"}),
    ],
)
def ingest(obj: GcsObject | None = None, mode: str = "event") -> str:
    return describe(obj, mode)
