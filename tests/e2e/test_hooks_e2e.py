"""On the local stack, a failed run tells: its on_failure hook and its notification webhook
post to a local receiver, run by the task worker after the run's end is committed; the webhook
gets exactly the documented RunNotification. A task's hook posts at the task's end, while its
run still goes on."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from orchestrator.contracts import HookState, RunNotification, RunStatus
from orchestrator.gcp import WebhookNotification
from tests.flows.hooked import fails_and_tells, tells_at_task_end
from tests.runtime.test_hooks import Receiver

pytestmark = pytest.mark.emulator


def test_a_failed_run_posts_its_hook_and_its_notification(emulator_backend: Any) -> None:
    receiver = Receiver()
    try:
        WebhookNotification(url=receiver.url).save("e2e-failures", overwrite=True)
        out = emulator_backend.run(fails_and_tells, {"x": 4, "hook_url": receiver.url})
        assert out.status is RunStatus.FAILED
        deadline = time.monotonic() + 60  # the worker runs them after the end is announced
        while len(receiver.bodies) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        receiver.close()
    run_id = out.run.run_id
    hook = [b for b in receiver.bodies if "run" in b]
    webhook = [b for b in receiver.bodies if "run_id" in b]
    assert hook == [
        {"flow": "fails-and-tells", "run": run_id, "state": "Failed", "message": "bad row 4"}
    ]
    (sent,) = webhook
    notification = RunNotification.model_validate(sent)
    assert sent == json.loads(notification.model_dump_json())  # the documented body, exactly
    assert notification.run_id == run_id
    assert notification.flow == "fails-and-tells"
    assert notification.state is HookState.FAILED
    assert notification.status is RunStatus.FAILED
    assert notification.error is not None
    assert (notification.error.type, notification.error.message) == ("ValueError", "bad row 4")
    assert notification.text == f"flow fails-and-tells run {run_id} Failed: ValueError: bad row 4"
    print(f"\nwebhook body: {json.dumps(sent, sort_keys=True)}")


def test_a_task_hook_posts_at_the_task_end_before_the_run_ends(emulator_backend: Any) -> None:
    receiver = Receiver()
    try:
        out = emulator_backend.run(tells_at_task_end, {"x": 1, "hook_url": receiver.url})
    finally:
        receiver.close()
    assert out.status is RunStatus.SUCCEEDED
    # The run's last task saw the post: the hook ran after `prepares` ended, before the end.
    posted = {"task": "prepares", "attempt": 1, "state": "Completed"}
    assert out.value == [posted]
    assert receiver.bodies == [posted]  # and once: nothing more came with the run's end
