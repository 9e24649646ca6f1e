"""Flows that tell (tests/e2e): one fails, with its on_failure hook and a notification
webhook; in one that succeeds, a task's on_completion hook posts at the task's end, which a
later task of the same run waits to see."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from orchestrator import flow, task
from orchestrator.context import flow_run as current_run

WEBHOOK = "notification-webhook/e2e-failures"


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def post_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """POST what the hook was told to the receiver the run names (its `hook_url`)."""
    body = {"flow": flow.name, "run": flow_run.id, "state": state.name, "message": state.message}
    _post(flow_run.parameters["hook_url"], body)


@task(name="breaks")
def breaks(x: int) -> int:
    raise ValueError(f"bad row {x}")


@flow(name="fails-and-tells", on_failure=[post_failure], notify=[WEBHOOK])
def fails_and_tells(x: int, hook_url: str) -> int:
    return breaks(x)


def post_task_done(task: Any, task_run: Any, state: Any) -> None:
    """POST a task's end to the run's receiver (a task hook reads the run from its context)."""
    body = {"task": task_run.task_key, "attempt": task_run.run_count, "state": state.name}
    _post(current_run.parameters["hook_url"], body)


@task(name="prepares", on_completion=[post_task_done])
def prepares(x: int) -> int:
    return x + 1


@task(name="sees-the-hook")
def sees_the_hook(y: int, hook_url: str) -> list[Any]:
    """What the receiver got so far, once it holds the hook's post (or after 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(hook_url, timeout=10) as response:
            got: list[Any] = json.loads(response.read())
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


@flow(name="tells-at-task-end")
def tells_at_task_end(x: int, hook_url: str) -> list[Any]:
    return sees_the_hook(prepares(x), hook_url)
