"""The Cloud Tasks stand-in, driven by the real `google-cloud-tasks` client (REST), as the
functions drive it on the stack: queues, named tasks that dedupe, a push at the scheduled time
with the task's headers and body, retries after a non-2xx answer, deletion."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from orchestrator.adapters import CloudTasksQueue, ensure_queue, task_id, tasks_client
from orchestrator.contracts import TIMER_DUE, OutboxEntry, OutboxKind, TimerDue
from orchestrator.emulators import CloudTasksServer

QUEUE = "projects/p/locations/local/queues/kumoflow-timers"


@dataclass
class Target:
    """The push target: answers `codes` in turn (then 200), records every push."""

    codes: list[int] = field(default_factory=list)
    pushes: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Target, str]]:
    api = CloudTasksServer("127.0.0.1", 0)
    target = Target()

    class Push(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            target.pushes.append(
                (time.time(), {k.lower(): v for k, v in self.headers.items()}, body)
            )
            self.send_response(target.codes.pop(0) if target.codes else 200)
            self.end_headers()
            target.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    push = ThreadingHTTPServer(("127.0.0.1", 0), Push)
    for server in (api, push):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CLOUD_TASKS_EMULATOR_HOST", f"http://127.0.0.1:{api.server_address[1]}")
    client = tasks_client()
    try:
        yield client, target, f"http://127.0.0.1:{push.server_address[1]}/"
    finally:
        for server in (api, push):
            server.shutdown()
            server.server_close()
        client.transport.close()


def _entry(seconds: float) -> OutboxEntry:
    due = datetime.now(UTC) + timedelta(seconds=seconds)
    return OutboxEntry(id="wake-1", run_id="r1", kind=OutboxKind.WAKE, due_at=due, timer=True)


def _wait(target: Target, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(target.pushes) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_timer_is_pushed_once_at_its_time_with_its_cloudevent(stand_in: Any) -> None:
    client, target, url = stand_in
    ensure_queue(client, QUEUE)
    ensure_queue(client, QUEUE)  # there already: fine
    queue = CloudTasksQueue(QUEUE, url, source="//kumoflow.dev/test", client=client)
    entry = _entry(0.5)
    queue.arm([entry])
    queue.arm([entry])  # the same timer again: one task (ALREADY_EXISTS is taken as done)
    (task,) = client.list_tasks(parent=QUEUE)
    assert task.name == f"{QUEUE}/tasks/{task_id(entry)}"
    _wait(target, 1)
    time.sleep(0.3)  # nothing else comes
    ((at, headers, body),) = target.pushes
    assert at >= entry.due_at.timestamp()  # never early
    assert headers["ce-type"] == TIMER_DUE
    assert headers["ce-source"] == "//kumoflow.dev/test"
    assert headers["ce-subject"] == "r1/wake-1"
    assert headers["content-type"] == "application/json"
    assert TimerDue.model_validate_json(body) == TimerDue(
        run_id="r1", entry_id="wake-1", due_at=entry.due_at
    )
    assert list(client.list_tasks(parent=QUEUE)) == []  # answered 2xx: done


def test_a_refused_push_is_tried_again_after_the_queues_backoff(stand_in: Any) -> None:
    client, target, url = stand_in
    ensure_queue(client, QUEUE)
    target.codes = [503, 425]
    CloudTasksQueue(QUEUE, url, client=client).arm([_entry(0.1)])
    _wait(target, 3)
    times = [at for at, _, _ in target.pushes]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.1  # minBackoff 0.1 s, doubling
    assert times[2] - times[1] >= 0.2


def test_a_deleted_task_is_never_pushed_and_an_unknown_queue_is_refused(stand_in: Any) -> None:
    client, target, url = stand_in
    ensure_queue(client, QUEUE)
    queue = CloudTasksQueue(QUEUE, url, client=client)
    queue.arm([_entry(0.3)])
    (task,) = client.list_tasks(parent=QUEUE)
    client.delete_task(name=task.name)
    time.sleep(0.6)
    assert target.pushes == []
    with pytest.raises(gexc.NotFound):
        client.create_task(parent=QUEUE + "-missing", task=queue.task(_entry(1)))
