"""Flows with `runtime="job"` tasks: each attempt runs as a job execution (a thread in memory,
a process of the fake Cloud Run Admin API on the stack)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from orchestrator import flow, task
from orchestrator.context import task_run


def marker(name: str) -> Path:
    """A file the job's body writes its process id to once it runs (the stack's test waits
    for it, and checks the process is gone after a cancel)."""
    return Path(tempfile.gettempdir()) / f"kumoflow-job-task-{name}"


@task(name="prepare")
def prepare(n: int) -> int:
    return n + 1


@task(name="long-sum", runtime="job", timeout_seconds=3600)
def long_sum(n: int, seconds: float) -> dict[str, object]:
    """Works for `seconds`, printing as it goes; says where it ran."""
    info = task_run.get()
    if info is not None:
        marker(info.id.split("/", 1)[0]).write_text(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        print("working", flush=True)
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    return {"sum": n * (n + 1) // 2, "in_job": bool(os.environ.get("KUMOFLOW_TOKEN"))}


@task(name="report")
def report(summary: dict[str, object]) -> str:
    return f"sum={summary['sum']}"


@flow(name="jobs-long")
def long_flow(n: int = 10, seconds: float = 0.0) -> str:
    return report(long_sum(prepare(n), seconds))


@task(name="job-fails", runtime="job", retries=1)
def job_fails() -> int:
    raise ValueError("the job's body failed")


@flow(name="jobs-failing")
def failing_flow() -> int:
    return job_fails()
