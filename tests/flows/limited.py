"""A wide map under a concurrency limit whose workers die now and then (SIGKILL, first attempt
of the chosen items): the limit holds, and no slot leaks."""

from __future__ import annotations

import os
import signal
import time

from orchestrator import context, flow, task, unmapped

KEY = "e2e-limited"


@task(name="limited-item", retries=2, retry_delay_seconds=0, concurrency=KEY)
def limited_item(i: int, kill: list[int]) -> int:
    info = context.task_run
    if info is not None and info.run_count == 1 and i in kill:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no response: as an OOM kill
    time.sleep(0.02)  # long enough that attempts overlap
    return i


@task(name="limited-total")
def limited_total(values: list[int]) -> int:
    return sum(values)


@flow(name="limited-map")
def limited_map(items: list[int], kill: list[int]) -> int:
    return limited_total(limited_item.map(items, kill=unmapped(kill)))
