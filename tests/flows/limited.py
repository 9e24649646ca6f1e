"""A wide map under a concurrency limit whose workers die now and then (SIGKILL, first attempt
of the chosen items): the limit holds, and no slot leaks."""

from __future__ import annotations

import os
import signal
import time

from orchestrator import context, flow, task, unmapped
from orchestrator.contracts import Run, TaskRun

KEY = "e2e-limited"


@task(name="limited-item", retries=2, retry_delay_seconds=0, concurrency=KEY)
def limited_item(i: int, kill: list[int]) -> int:
    info = context.task_run
    if info is not None and info.run_count == 1 and i in kill:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no response: as an OOM kill
    time.sleep(0.3)  # long enough that, unlimited, far more than the limit would overlap
    return i


@task(name="limited-total")
def limited_total(values: list[int]) -> int:
    return sum(values)


@flow(name="limited-map")
def limited_map(items: list[int], kill: list[int]) -> int:
    return limited_total(limited_item.map(items, kill=unmapped(kill)))


def most_at_once(tasks: list[TaskRun]) -> int:
    """The most attempts whose [started_at, ended_at] overlap at one instant."""
    edges = sorted(
        (when, step)
        for t in tasks
        for a in t.attempts
        if a.started_at is not None and a.ended_at is not None
        for when, step in ((a.started_at, 1), (a.ended_at, -1))
    )  # at one instant an end sorts before a start: touching attempts do not overlap
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


REGIONS = ("eu", "us")


def region_key(region: str) -> str:
    return f"e2e-api-{region}"


@task(name="regional-call", retries=1, retry_delay_seconds=0, concurrency=region_key)
def regional_call(i: int, region: str) -> int:
    """A call to a regional API: one at a time per region (the key comes from the input)."""
    time.sleep(0.3)
    return i


@flow(name="regional-map")
def regional_map(items: list[int], regions: list[str]) -> int:
    return limited_total(regional_call.map(items, regions))


@task(name="keyless-call", concurrency=lambda region: None if region == "none" else region)
def keyless_call(region: str) -> str:
    return region


@flow(name="keyless")
def keyless(region: str) -> str:
    return keyless_call(region)


def most_at_once_by(tasks: list[TaskRun]) -> dict[str, int]:
    """most_at_once per concurrency key, as each attempt recorded it."""

    def holding(t: TaskRun, key: str) -> TaskRun:
        return t.model_copy(update={"attempts": [a for a in t.attempts if a.slot_key == key]})

    keys = {a.slot_key for t in tasks for a in t.attempts if a.slot_key is not None}
    return {k: most_at_once([holding(t, k) for t in tasks]) for k in keys}


MAX_ACTIVE = 2  # of two-at-a-time


@task(name="slow-step")
def slow_step(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i


@flow(name="two-at-a-time", max_active_runs=MAX_ACTIVE)
def two_at_a_time(i: int, seconds: float = 1.0) -> int:
    return slow_step(i, seconds)


def most_runs_at_once(runs: list[Run]) -> int:
    """The most runs whose [started_at, ended_at] overlap at one instant."""
    edges = sorted(
        (when, step)
        for r in runs
        if r.started_at is not None and r.ended_at is not None
        for when, step in ((r.started_at, 1), (r.ended_at, -1))
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak
