"""A flow that fails and tells: its on_failure hook and a notification webhook (tests/e2e)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from orchestrator import flow, task

WEBHOOK = "notification-webhook/e2e-failures"


def post_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """POST what the hook was told to the receiver the run names (its `hook_url`)."""
    body = {"flow": flow.name, "run": flow_run.id, "state": state.name, "message": state.message}
    request = urllib.request.Request(
        flow_run.parameters["hook_url"],
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@task(name="breaks")
def breaks(x: int) -> int:
    raise ValueError(f"bad row {x}")


@flow(name="fails-and-tells", on_failure=[post_failure], notify=[WEBHOOK])
def fails_and_tells(x: int, hook_url: str) -> int:
    return breaks(x)
