"""A task whose first attempt kills the process running it (a worker dying mid-task)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from orchestrator import flow, task


@task(name="dies-once", retries=1, retry_delay_seconds=0)
def dies_once(folder: str, x: int) -> int:
    runs = Path(folder) / "runs"
    with runs.open("a") as f:
        f.write("x")
    if runs.stat().st_size == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no response: as an OOM kill
    return 10 * x


@flow(name="worker-dies")
def worker_dies(folder: str, x: int = 4) -> int:
    return dies_once(folder, x)
