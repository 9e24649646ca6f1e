"""The local stack end to end: real emulators on free ports with a throwaway state dir."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.emulators import (
    Service,
    StackConfig,
    StackError,
    clear_data,
    down,
    http_request,
    prerequisites,
    start_function,
    status,
    stop_function,
    up,
)

_ALL = tuple(Service)
_MISSING = prerequisites(_ALL)

pytestmark = [
    pytest.mark.emulator,
    pytest.mark.skipif(
        bool(_MISSING) and os.environ.get("CI") != "true",
        reason="local emulator stack unavailable: " + "; ".join(_MISSING),
    ),
]

_JSON = {"Content-Type": "application/json"}


def _free_ports(n: int) -> list[int]:
    # Hold all sockets at once so the ports are distinct.
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _config(state_dir: Path) -> StackConfig:
    pubsub, firestore, firestore_ws, gcs, bigquery, bigquery_grpc, cloudrun, tasks = _free_ports(8)
    return StackConfig(
        project="kumoflow-test",
        pubsub_port=pubsub,
        firestore_port=firestore,
        firestore_ws_port=firestore_ws,
        gcs_port=gcs,
        bigquery_port=bigquery,
        bigquery_grpc_port=bigquery_grpc,
        cloudrun_port=cloudrun,
        cloudtasks_port=tasks,
        gcs_notification_topic=f"gcs-{uuid.uuid4().hex[:8]}",
        state_dir=state_dir,
    )


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # reaped or a zombie nobody waits for: not running either way


def _call(method: str, url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    code, raw = http_request(method, url, data, headers=_JSON, timeout=timeout)
    return code, json.loads(raw) if raw.strip() else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    config = _config(tmp_path_factory.mktemp("stack"))
    try:
        up(config, services=_ALL, timeout=60)
        yield config
    finally:
        down(config)


def test_prerequisites_present() -> None:
    assert prerequisites(_ALL) == []


def test_up_is_healthy_and_reused(stack: StackConfig) -> None:
    first = status(stack)
    assert first.healthy
    assert [s.name for s in first.services] == [
        "pubsub",
        "firestore",
        "gcs",
        "cloudtasks",
        "bigquery",
        "cloudrun",
    ]
    for s in first.services:
        assert s.pid is not None
        assert s.rss_bytes is not None
        assert s.rss_bytes > 0
        assert s.log.is_file()
        assert os.getsid(s.pid) == s.pid  # own session: outlives the CLI that started it
    json.dumps(first.to_json())  # --json output must serialise

    again = up(stack)
    assert [s.pid for s in again.services] == [s.pid for s in first.services]
    assert again.env["STORAGE_EMULATOR_HOST"] == f"http://127.0.0.1:{stack.gcs_port}"


def test_gcs_upload_publishes_finalize_notification(stack: StackConfig) -> None:
    pubsub = f"http://{stack.host}:{stack.pubsub_port}/v1/projects/{stack.project}"
    gcs = f"http://{stack.host}:{stack.gcs_port}"
    sub = f"sub-{uuid.uuid4().hex[:8]}"
    topic = f"projects/{stack.project}/topics/{stack.gcs_notification_topic}"
    assert _call("PUT", f"{pubsub}/subscriptions/{sub}", {"topic": topic})[0] == 200
    bucket = f"bkt-{uuid.uuid4().hex[:8]}"
    assert _call("POST", f"{gcs}/storage/v1/b", {"name": bucket})[0] == 200
    code, raw = http_request(
        "POST",
        f"{gcs}/upload/storage/v1/b/{bucket}/o?uploadType=media&name=in/data.json",
        b'{"x": 1}',
        headers=_JSON,
    )
    assert code == 200, raw

    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        # The emulator's REST pull waits for a message, so one call usually suffices.
        code, body = _call("POST", f"{pubsub}/subscriptions/{sub}:pull", {"maxMessages": 10}, 10)
        assert code == 200, body
        received = body.get("receivedMessages", [])
    assert received, "no OBJECT_FINALIZE notification within 10 s"
    message = received[0]["message"]
    attrs = message["attributes"]
    assert attrs["eventType"] == "OBJECT_FINALIZE"
    assert attrs["bucketId"] == bucket
    assert attrs["objectId"] == "in/data.json"
    assert json.loads(base64.b64decode(message["data"]))["name"] == "in/data.json"


def test_up_restarts_a_dead_service(stack: StackConfig) -> None:
    before = {s.name: s.pid for s in status(stack).services}
    gcs_pid = before["gcs"]
    assert gcs_pid is not None
    os.kill(gcs_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while status(stack).service("gcs").pid is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not status(stack).healthy

    after = up(stack)
    assert after.healthy
    assert after.service("gcs").pid not in (None, gcs_pid)
    assert after.service("pubsub").pid == before["pubsub"]
    assert after.service("firestore").pid == before["firestore"]


def test_clear_data_empties_firestore(stack: StackConfig) -> None:
    docs = (
        f"http://{stack.host}:{stack.firestore_port}/v1/projects/{stack.project}"
        "/databases/(default)/documents"
    )
    body = {"fields": {"a": {"stringValue": "b"}}}
    assert _call("POST", f"{docs}/runs?documentId=r1", body)[0] == 200
    assert _call("GET", f"{docs}/runs/r1")[0] == 200
    clear_data(stack)
    assert _call("GET", f"{docs}/runs/r1")[0] == 404


_FUNCTION = """
import os
import pathlib

import functions_framework


@functions_framework.cloud_event
def handle(event):
    out = pathlib.Path(os.environ["OUT_DIR"]) / (event["id"] + ".json")
    out.write_text(
        '{"type": "%s", "threads": "%s", "pubsub": "%s", "data": %s}'
        % (event["type"], os.environ["THREADS"], os.environ["PUBSUB_EMULATOR_HOST"],
           __import__("json").dumps(event.data))
    )
"""


def _post_cloudevent(port: int, event_id: str) -> int:
    code, _ = http_request(
        "POST",
        f"http://127.0.0.1:{port}/",
        json.dumps({"n": 1}).encode(),
        headers={
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-type": "dev.kumoflow.test",
            "ce-source": "//kumoflow/test",
            "ce-id": event_id,
        },
        timeout=10,
    )
    return code


def test_start_function_serves_binary_cloudevents(stack: StackConfig, tmp_path: Path) -> None:
    source = tmp_path / "main.py"
    source.write_text(_FUNCTION)
    (port,) = _free_ports(1)
    started = start_function(
        stack, "echo", target="handle", source=source, port=port, env={"OUT_DIR": str(tmp_path)}
    )
    assert started.healthy
    assert started.pid is not None
    assert started.target == "handle"

    assert _post_cloudevent(port, "evt-1") == 200
    seen = json.loads((tmp_path / "evt-1.json").read_text())
    assert seen == {
        "type": "dev.kumoflow.test",
        "threads": "16",
        "pubsub": f"127.0.0.1:{stack.pubsub_port}",
        "data": {"n": 1},
    }

    reused = start_function(
        stack, "echo", target="handle", source=source, port=port, env={"OUT_DIR": str(tmp_path)}
    )
    assert reused.pid == started.pid
    assert [f.name for f in status(stack).functions] == ["echo"]

    assert stop_function(stack, "echo")
    assert _gone(started.pid)
    assert not stop_function(stack, "echo")
    assert status(stack).functions == ()


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    config = _config(tmp_path / "stack")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((config.host, config.gcs_port))
        squatter.listen()
        with pytest.raises(StackError, match=f"port {config.gcs_port}.*KUMOFLOW_GCS_PORT"):
            up(config)
    assert status(config).services[0].pid is None  # nothing was started


def test_down_stops_services_and_functions(stack: StackConfig, tmp_path: Path) -> None:
    source = tmp_path / "main.py"
    source.write_text(_FUNCTION)
    (port,) = _free_ports(1)
    up(stack)
    fn = start_function(stack, "late", target="handle", source=source, port=port, env={})
    pids = [s.pid for s in status(stack).services] + [fn.pid]

    stopped = down(stack)

    assert stopped == ["late", "cloudrun", "bigquery", "cloudtasks", "gcs", "firestore", "pubsub"]
    assert all(pid is not None and _gone(pid) for pid in pids)
    after = status(stack)
    assert not after.healthy
    assert all(s.pid is None for s in after.services)
    assert after.functions == ()
    assert down(stack) == []


def test_stale_record_of_a_recycled_pid_is_not_killed(tmp_path: Path) -> None:
    config = _config(tmp_path / "stack")
    config.state_dir.mkdir(parents=True)
    # Our own PID with a wrong start time: the recorded process is gone, the PID reused.
    record = {
        "name": "gcs",
        "kind": "service",
        "pid": os.getpid(),
        "pgid": os.getpid(),
        "port": config.gcs_port,
        "cmd": ["fake-gcs-server"],
        "started_at": "2020-01-01T00:00:00+00:00",
        "proc_start": 1,
        "log": str(tmp_path / "gcs.log"),
    }
    (config.state_dir / "gcs.json").write_text(json.dumps(record))
    assert status(config).service("gcs").pid is None
    assert down(config) == []  # and we are still alive to assert it
    assert not (config.state_dir / "gcs.json").exists()


def test_function_that_cannot_load_reports_its_log(stack: StackConfig, tmp_path: Path) -> None:
    source = tmp_path / "main.py"
    source.write_text(_FUNCTION)
    (port,) = _free_ports(1)
    with pytest.raises(StackError, match=r"exited during startup(?s:.*)no_such_target"):
        start_function(stack, "broken", target="no_such_target", source=source, port=port, env={})
    assert status(stack).functions == ()
