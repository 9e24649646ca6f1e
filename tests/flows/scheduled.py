"""A flow on a per-minute schedule, for the real-stack schedule test."""

from __future__ import annotations

from orchestrator import flow, on_schedule, task


@task(name="tick")
def tick(label: str) -> str:
    return label


@flow(name="every-minute", triggers=[on_schedule(cron="* * * * *", params={"label": "tick"})])
def every_minute(label: str = "manual") -> str:
    return tick(label)
