"""State hooks and notifications, in process: run after the run's end is committed, with the
run's (and task's) context; a hook that raises is recorded and changes nothing; a notification
webhook receives exactly the documented RunNotification."""

from __future__ import annotations

import email
import json
import logging
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator import flow, task
from orchestrator.adapters import BLOCKS_DIR_ENV, MemoryStore, VirtualClock
from orchestrator.context import flow_run
from orchestrator.contracts import (
    HooksRequested,
    HookState,
    RunNotification,
    RunRequested,
    RunStatus,
    TaskRequested,
)
from orchestrator.engine import CancelRun
from orchestrator.gcp import SmtpNotification, WebhookNotification
from orchestrator.runtime import advance, memory_runtime, run_hooks, run_task, start_run
from orchestrator.testing import MemoryBackend
from tests.runtime.pool import PoolBus

CALLS: list[tuple[str, Any, ...]] = []  # type: ignore[misc]


def flow_failed(flow: Any, run: Any, state: Any) -> None:
    CALLS.append(("flow_failed", flow.name, run.id, state.name, state.is_failed(), flow_run.id))


def flow_completed(flow: Any, run: Any, state: Any) -> None:
    CALLS.append(("flow_completed", flow.name, run.id, state.name))


def task_failed(task: Any, run: Any, state: Any) -> None:
    CALLS.append(("task_failed", task.name, run.task_key, state.name, state.message))


def task_completed(task: Any, run: Any, state: Any) -> None:
    CALLS.append(("task_completed", task.name, run.task_key, state.name))


def broken(flow: Any, run: Any, state: Any) -> None:
    raise RuntimeError("the hook itself is broken")


@task(on_completion=[task_completed])
def fine(x: int) -> int:
    return x


@task(on_failure=[task_failed], on_completion=[task_completed])
def explodes(x: int) -> int:
    raise ValueError(f"bad row {x}")


@flow(name="hooked-fails", on_failure=[flow_failed, broken], on_completion=[flow_completed])
def hooked_fails(x: int) -> int:
    return explodes(fine(x))


@flow(name="hooked-ok", on_failure=[flow_failed], on_completion=[flow_completed])
def hooked_ok(x: int) -> int:
    return fine(x)


@pytest.fixture(autouse=True)
def _calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


def test_failure_hooks_run_once_after_the_end_with_its_context_and_change_nothing() -> None:
    backend = MemoryBackend()
    out = backend.run(hooked_fails, {"x": 3})
    assert out.status is RunStatus.FAILED
    run_id = out.run.run_id
    assert sorted(CALLS) == sorted(
        [
            ("flow_failed", "hooked-fails", run_id, "Failed", True, run_id),
            ("task_completed", "fine", "fine", "Completed"),
            ("task_failed", "explodes", "explodes", "Failed", "bad row 3"),
        ]
    )
    # The broken hook is recorded (once) and the run is as it ended.
    (letter,) = backend.store.list()
    assert letter.source == "hooks"
    assert "hook tests.runtime.test_hooks:broken failed: RuntimeError" in letter.reason
    snap = backend.store.load(run_id)
    assert snap is not None
    assert snap.run.status is RunStatus.FAILED
    assert snap.run.error is not None
    assert snap.run.error.message == "bad row 3"


def test_the_lines_the_alerts_count_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """infra/monitoring.tf counts "run ended" lines by status and error type, and the lines of
    failed hooks (function "hooks"): the run's end and its broken hook write them."""
    with caplog.at_level(logging.INFO, logger="kumoflow"):
        out = MemoryBackend().run(hooked_fails, {"x": 2})
    (end,) = [r for r in caplog.records if r.getMessage() == "run ended"]
    assert (getattr(end, "status", None), getattr(end, "reason", None)) == ("FAILED", "ValueError")
    assert getattr(end, "run_id", None) == out.run.run_id
    (hook,) = [r for r in caplog.records if getattr(r, "function", None) == "hooks"]
    assert hook.getMessage().startswith("hook tests.runtime.test_hooks:broken failed")


def test_completion_hooks_only_for_a_completed_run() -> None:
    out = MemoryBackend().run(hooked_ok, {"x": 1})
    assert out.status is RunStatus.SUCCEEDED
    assert sorted(CALLS) == [
        ("flow_completed", "hooked-ok", out.run.run_id, "Completed"),
        ("task_completed", "fine", "fine", "Completed"),
    ]


FLAKY_RUNS: list[int] = []


@task(retries=1, retry_delay_seconds=0, on_failure=[task_failed], on_completion=[task_completed])
def flaky(x: int) -> int:
    FLAKY_RUNS.append(x)
    if len(FLAKY_RUNS) == 1:
        raise ValueError("first try")
    return x


@task
def saw_hook(x: int) -> bool:
    """Waits (a while) for flaky's completion hook: it runs at flaky's end, not the run's."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(c[:2] == ("task_completed", "flaky") for c in CALLS):
            return True
        time.sleep(0.02)
    return False


@flow(name="hooked-retried", on_completion=[flow_completed])
def hooked_retried(x: int) -> bool:
    return saw_hook(flaky(x))


def test_a_task_hook_runs_at_the_task_end_once_and_not_for_a_retried_failure() -> None:
    FLAKY_RUNS.clear()
    out = MemoryBackend().run(hooked_retried, {"x": 2})
    assert out.status is RunStatus.SUCCEEDED
    assert FLAKY_RUNS == [2, 2]  # failed once, retried, succeeded
    assert out.value is True  # a later task of the same run saw the hook's call
    calls = list(CALLS)  # the retried failure ran no failure hook; the success one hook
    assert calls == [
        ("task_completed", "flaky", "flaky", "Completed"),
        ("flow_completed", "hooked-retried", out.run.run_id, "Completed"),
    ]


def test_a_flow_without_hooks_keeps_its_version() -> None:
    @flow(name="plain-for-version")
    def plain(x: int) -> int:
        return x

    assert plain.spec.hooks is None
    assert '"hooks":' not in plain.spec.canonical_json().decode()
    assert hooked_ok.spec.hooks is not None


class Receiver:
    """A local webhook receiver: every POST body, parsed (a GET returns them as a list)."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[Any] = []
        got = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.end_headers()

            def do_GET(self) -> None:  # what it received so far (a task may wait for it)
                body = json.dumps(got).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@flow(name="notified-fails", notify=["notification-webhook/ops", "notification-webhook/slack"])
def notified_fails(x: int) -> int:
    return explodes(x)


def test_a_failure_is_posted_to_the_webhook_exactly_as_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BLOCKS_DIR_ENV, str(tmp_path / "blocks"))
    receiver = Receiver()
    try:
        WebhookNotification(url=receiver.url).save("ops")
        WebhookNotification(url=receiver.url, format="slack").save("slack")
        out = MemoryBackend().run(notified_fails, {"x": 7})
    finally:
        receiver.close()
    assert out.status is RunStatus.FAILED
    generic, slack = receiver.bodies
    sent = RunNotification.model_validate(generic)
    assert sent.run_id == out.run.run_id
    assert sent.state is HookState.FAILED
    assert sent.status is RunStatus.FAILED
    assert sent.error is not None
    assert (sent.error.type, sent.error.message) == ("ValueError", "bad row 7")
    assert sent.text == f"flow notified-fails run {out.run.run_id} Failed: ValueError: bad row 7"
    assert generic == json.loads(sent.model_dump_json())  # nothing more, nothing less
    assert slack == {"text": sent.text}


def test_a_webhook_that_refuses_is_recorded_and_the_run_stays_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BLOCKS_DIR_ENV, str(tmp_path / "blocks"))
    receiver = Receiver(status=500)
    backend = MemoryBackend()
    try:
        WebhookNotification(url=receiver.url).save("ops")
        out = backend.run(notified_fails, {"x": 1})
    finally:
        receiver.close()
    assert out.status is RunStatus.FAILED
    letters = sorted(letter.reason for letter in backend.store.list())
    assert len(letters) == 2  # the refused post, and the block "slack" that was never saved
    assert letters[0].startswith("notify notification-webhook/ops failed: TransientError")
    assert "no notification-webhook block named 'slack'" in letters[1]


class MailServer:
    """A minimal SMTP server (no TLS, no auth): every message's envelope and text."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], str]] = []
        mails = self.mails

        class Session(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                sender, to, reply = "", [], self.wfile.write
                reply(b"220 test ESMTP\r\n")
                while line := self.rfile.readline().decode():
                    verb = line[:4].upper()
                    if verb in ("EHLO", "HELO"):
                        reply(b"250 test\r\n")
                    elif verb == "MAIL":
                        sender = line.split(":", 1)[1].strip().strip("<>")
                        reply(b"250 ok\r\n")
                    elif verb == "RCPT":
                        to.append(line.split(":", 1)[1].strip().strip("<>"))
                        reply(b"250 ok\r\n")
                    elif verb == "DATA":
                        reply(b"354 go on\r\n")
                        text = []
                        while (part := self.rfile.readline().decode()) != ".\r\n":
                            text.append(part)
                        mails.append((sender, to, "".join(text)))
                        reply(b"250 queued\r\n")
                    elif verb == "QUIT":
                        reply(b"221 bye\r\n")
                        return
                    else:
                        reply(b"250 ok\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@flow(name="mailed-fails", notify=["notification-smtp/oncall"])
def mailed_fails(x: int) -> int:
    return explodes(x)


def test_a_failure_is_emailed_through_the_smtp_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BLOCKS_DIR_ENV, str(tmp_path / "blocks"))
    mail = MailServer()
    try:
        SmtpNotification(
            host="127.0.0.1",
            port=mail.port,
            sender="kumoflow@example.com",
            to=("oncall@example.com", "lead@example.com"),
            starttls=False,
        ).save("oncall")
        out = MemoryBackend().run(mailed_fails, {"x": 5})
    finally:
        mail.close()
    ((sender, to, text),) = mail.mails
    assert (sender, to) == ("kumoflow@example.com", ["oncall@example.com", "lead@example.com"])
    message = email.message_from_string(text)
    assert (
        message["Subject"]
        == f"flow mailed-fails run {out.run.run_id} Failed: ValueError: bad row 5"
    )
    body = RunNotification.model_validate_json(message.get_payload(decode=True))
    assert body.run_id == out.run.run_id
    assert body.state is HookState.FAILED


def task_cancelled(task: Any, run: Any, state: Any) -> None:
    CALLS.append(("task_cancelled", task.name, run.task_key, state.name, state.message))


RUNNING = threading.Event()
RELEASE = threading.Event()


@task(on_cancellation=[task_cancelled], on_failure=[task_failed])
def stopped(x: int) -> int:
    RUNNING.set()
    RELEASE.wait(20)
    return x


@flow(name="hooked-cancelled", on_cancellation=[flow_failed])
def hooked_cancelled(x: int) -> int:
    return stopped(x)


def test_a_task_cancelled_with_its_run_runs_its_cancellation_hooks_once() -> None:
    """A cancel ends a running task on the whole-run path: that commit requests its hooks."""
    store, bus = MemoryStore(), PoolBus()
    rt = memory_runtime(
        clock=VirtualClock(), functions=hooked_cancelled.functions(), store=store, bus=bus
    )
    store.put_flow(hooked_cancelled.spec)
    start_run(rt, RunRequested(flow="hooked-cancelled", params={"x": 1}), run_id="r")
    ((_, dispatch),) = bus.pool
    assert isinstance(dispatch.data, TaskRequested)
    RUNNING.clear()
    RELEASE.clear()
    worker = threading.Thread(target=run_task, args=(rt, dispatch.data))
    worker.start()
    try:
        assert RUNNING.wait(20)
        advance(rt, "r", CancelRun("stopped by an operator"))  # while the task runs
        advance(rt, "r", CancelRun("stopped by an operator"))  # a repeated cancel: no new end
    finally:
        RELEASE.set()
        worker.join()
    requests = [e.data for _, e in bus.pool if isinstance(e.data, HooksRequested)]
    assert [(r.key, r.task_attempt, r.state) for r in requests] == [
        ("stopped", 1, HookState.CANCELLED),
        (None, None, HookState.CANCELLED),
    ]
    for req in requests:
        assert run_hooks(rt, req) == 0
    assert CALLS == [
        ("task_cancelled", "stopped", "stopped", "Cancelled", "stopped by an operator"),
        ("flow_failed", "hooked-cancelled", "r", "Cancelled", False, "r"),
    ]
