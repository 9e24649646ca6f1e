"""Waits on the local stack: a flow sleeps 3 s (its timer's lateness printed), waits for a
message published to the Pub/Sub emulator with the real client and goes on with its data,
or one published with `gcloud pubsub topics publish` (matched by its attributes), and pauses
until `kumoflow runs resume` gives it a form's input (bad input refused first), or a signed
link opened through the public callback function; events past retention leave the mailbox."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from orchestrator.adapters import VirtualClock
from orchestrator.cli import main
from orchestrator.contracts import RunStatus, WaitEvent
from orchestrator.io import services
from orchestrator.runtime import expire_events
from orchestrator.testing import StackBackend
from orchestrator.waits import (
    ResumeKey,
    kumoflow_event,
    resume_url,
    send_event,
    source_key,
    waiting,
)
from tests.flows.waits import (
    approval,
    attribute_listener,
    invoice_listener,
    napper,
    order_listener,
)

pytestmark = pytest.mark.emulator


def _waiting(backend: StackBackend, run_id: str, key: str, timeout: float = 60) -> str:
    """What `key` waits for, once the run shows it parked (as `runs show` does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = backend.rt.state.load(run_id)
        found = waiting(snap.outbox) if snap else {}
        if key in found:
            return found[key]
        time.sleep(0.2)
    raise AssertionError(f"{key} of run {run_id} never waited")


def test_a_flow_sleeps_three_seconds_without_a_function_waiting(
    emulator_backend: StackBackend,
) -> None:
    run_id = emulator_backend.start(napper, {"seconds": 3})
    assert _waiting(emulator_backend, run_id, "sleep").startswith("sleep until ")
    outcome = emulator_backend.wait(run_id, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.value == "slept 3"
    (attempt,) = outcome.tasks["sleep"].attempts
    assert attempt.started_at is not None
    assert attempt.ended_at is not None
    slept = (attempt.ended_at - attempt.started_at).total_seconds()
    assert slept >= 3
    print(f"\nsleep(3): node ended {slept - 3:.3f} s after its time (timer lateness)")


def test_a_flow_waits_for_a_pubsub_message_and_goes_on_with_its_data(
    emulator_backend: StackBackend, stack_env: dict[str, str]
) -> None:
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    project = stack_env["GOOGLE_CLOUD_PROJECT"]
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(project, "orders")
    with contextlib.suppress(gexc.AlreadyExists):
        publisher.create_topic(name=topic)  # what the flow declares
    run_id = emulator_backend.start(order_listener, {"timeout": 120})
    assert _waiting(emulator_backend, run_id, "wait-for-event").startswith(
        "event from pubsub/orders"
    )
    publisher.publish(topic, json.dumps({"kind": "refund", "id": 6}).encode()).result()
    publisher.publish(topic, json.dumps({"kind": "order", "id": 7}).encode(), src="e2e").result()
    outcome = emulator_backend.wait(run_id, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.value == {"kind": "order", "id": 7}


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="no gcloud on this machine")
def test_a_message_published_with_gcloud_ends_a_wait_matching_its_attributes(
    emulator_backend: StackBackend, stack_env: dict[str, str]
) -> None:
    run_id = emulator_backend.start(attribute_listener, {"timeout": 120})
    assert _waiting(emulator_backend, run_id, "wait-for-event")
    host = stack_env["PUBSUB_EMULATOR_HOST"]
    env = {
        **os.environ,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": f"http://{host}/",
        "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
    }
    for region in ("us", "eu"):
        message = json.dumps({"kind": "order", "region": region})
        subprocess.run(
            [
                *("gcloud", "pubsub", "topics", "publish", "orders"),
                *("--project", stack_env["GOOGLE_CLOUD_PROJECT"]),
                *("--message", message, "--attribute", f"region={region}"),
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
    outcome = emulator_backend.wait(run_id, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.value == {"kind": "order", "region": "eu"}


def test_a_kumoflow_event_sent_from_the_cli_ends_a_wait(emulator_backend: StackBackend) -> None:
    run_id = emulator_backend.start(invoice_listener, {"invoice": 42, "timeout": 120})
    assert _waiting(emulator_backend, run_id, "wait-for-event").startswith("event from event/")
    for invoice in (41, 42, 42):  # another invoice's, then one sent twice
        sent = _cli("events", "send", "invoice-paid", "--data", f'{{"invoice": {invoice}}}')
        assert sent.exit_code == 0, sent.output
    outcome = emulator_backend.wait(run_id, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.value == {"invoice": 42}


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_a_paused_flow_is_resumed_from_the_cli_with_a_form(emulator_backend: StackBackend) -> None:
    run_id = emulator_backend.start(approval, {"amount": 12})
    assert _waiting(emulator_backend, run_id, "pause").startswith("input (Approval)")
    shown = json.loads(_cli("runs", "show", run_id, "--json").output)
    assert shown["waiting"]["pause"].startswith("input (Approval)")
    refused = _cli("runs", "resume", run_id, "--input", '{"approved": "maybe"}')
    assert refused.exit_code == 2, refused.output
    assert "approved: Input should be a valid boolean" in refused.output
    assert "approver: Field required" in refused.output
    assert _waiting(emulator_backend, run_id, "pause")  # nothing changed
    given = '{"approved": true, "approver": "ana"}'
    done = _cli("runs", "resume", run_id, "--input", given)
    assert done.exit_code == 0, done.output
    again = _cli("runs", "resume", run_id, "--input", given)
    assert again.exit_code == 2  # resumed once: the second finds nothing waiting
    outcome = emulator_backend.wait(run_id, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.value == "12 approved by ana"


def test_a_signed_link_resumes_a_paused_run_through_the_callback_function(
    emulator_backend: StackBackend,
) -> None:
    """The public callback function (functions-framework's app over the stack's services): a
    forged link is refused with 403, the signed one shows the form and resumes the run."""
    import functions_framework

    from orchestrator import functions

    rt = emulator_backend.rt
    run_id = emulator_backend.start(approval, {"amount": 5})
    assert _waiting(emulator_backend, run_id, "pause").startswith("input (Approval)")
    with services(rt.blobs, rt.blocks, (rt.clock, rt.results_bucket)):
        ResumeKey(key=secrets.token_urlsafe(32)).save("kumoflow-resume", overwrite=True)
        link = urlsplit(resume_url("https://callback.example", run_id, "pause"))
    path = f"{link.path}?{link.query}"
    source = Path(__file__).resolve().parents[2] / "orchestrator" / "functions" / "main.py"
    had_main = "main" in sys.modules
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="resume_callback", source=str(source), signature_type="http"
    )
    functions.use_runtime(rt)
    try:
        client = app.test_client()
        forged = path.replace("sig=", "sig=0")
        assert client.post(forged, data={"approved": "on", "approver": "eve"}).status_code == 403
        assert client.get(path).status_code == 200
        done = client.post(path, data={"approved": "on", "approver": "ana"})
        assert done.status_code == 200, done.get_data(as_text=True)
    finally:
        functions.use_runtime(None)
        if not had_main:
            sys.modules.pop("main", None)
    outcome = emulator_backend.wait(run_id, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.value == "5 approved by ana"


def test_events_past_retention_are_deleted_from_the_stack_mailbox(
    emulator_backend: StackBackend,
) -> None:
    """On the GCS emulator: an event stamped 30 days ago (no live run is that old) goes with
    its marker; one sent now stays."""
    rt = emulator_backend.rt
    source = kumoflow_event(f"expiry-{secrets.token_hex(4)}")
    past = replace(rt, clock=VirtualClock(rt.clock.now() - timedelta(days=30)))
    assert send_event(source, {"n": 1}, event_id="old", rt=past)
    assert send_event(source, {"n": 2}, event_id="new", rt=rt)
    folder = f"gs://{rt.results_bucket}/kumoflow/events/{source_key(source)}/"
    assert len(rt.blobs.list_uris(folder)) == 2
    while expire_events(rt, rt.clock.now()).more:
        pass  # other tests' old events may fill pages first
    (kept,) = rt.blobs.list_uris(folder)
    assert WaitEvent.model_validate_json(rt.blobs.get(kept)).id == "new"
    assert not send_event(source, {"n": 2}, event_id="new", rt=rt)  # its marker stayed
    assert send_event(source, {"n": 1}, event_id="old", rt=rt)  # its marker went with it
