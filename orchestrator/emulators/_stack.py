"""The emulators: start in order, reuse healthy ones, report, stop."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from ._config import (
    PORT_BASE_ENV,
    PORTS,
    Service,
    StackConfig,
    StackError,
    bqemulator_python,
    fake_gcs_binary,
    firestore_jar,
    java_binary,
    prerequisites,
    pubsub_script,
)
from ._functions import function_status
from ._net import http_ok, http_request, port_free
from ._process import (
    ProcessRecord,
    is_running,
    load_record,
    load_records,
    log_tail,
    remove_record,
    rss_by_group,
    save_record,
    spawn,
    state_lock,
    stop,
)
from ._status import ServiceStatus, StackStatus

__all__ = ["clear_data", "down", "status", "up"]

_JAVA_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


_ATTRS: dict[Service, tuple[str, ...]] = {
    Service.PUBSUB: ("pubsub_port",),
    Service.FIRESTORE: ("firestore_port", "firestore_ws_port"),
    Service.GCS: ("gcs_port",),
    Service.BIGQUERY: ("bigquery_port", "bigquery_grpc_port"),
    Service.CLOUDRUN: ("cloudrun_port",),
    Service.CLOUDTASKS: ("cloudtasks_port",),
}
_ENV = {p.attr: p.env for p in PORTS}


def _ports(config: StackConfig, name: Service) -> list[tuple[str, int]]:
    """(config attribute, port) pairs a service binds."""
    return [(a, int(getattr(config, a))) for a in _ATTRS[name]]


def _url(config: StackConfig, name: Service) -> str:
    return f"http://{config.host}:{_ports(config, name)[0][1]}"


def _health_url(config: StackConfig, name: Service) -> str:
    # Both Java emulators and the fake Cloud Run and Cloud Tasks APIs answer on /;
    # fake-gcs-server lists buckets; bqemulator has a readiness probe.
    path = {Service.GCS: "/storage/v1/b", Service.BIGQUERY: "/readyz"}.get(name, "/")
    return _url(config, name) + path


def _command(config: StackConfig, name: Service) -> tuple[tuple[str, ...], dict[str, str]]:
    """The argv and extra env that start service `name` (argv doubles as its identity)."""
    host = config.host
    argv: tuple[str, ...]
    if name is Service.PUBSUB:
        argv = (str(pubsub_script()), f"--host={host}", f"--port={config.pubsub_port}")
        # The wrapper script `exec`s java, so the PID we record is the JVM itself.
        return argv, {"JAVA_OPTS": "-Xmx256m"}
    if name is Service.FIRESTORE:
        java = java_binary()
        if java is None:
            raise StackError("java not found on PATH; see `emulators.prerequisites()`")
        argv = (
            str(java),
            "-Duser.language=en",
            "-Xmx512m",
            "-cp",
            str(firestore_jar()),
            _JAVA_CLASS,
            "start",
            f"--host={host}",
            f"--port={config.firestore_port}",
            f"--websocket_port={config.firestore_ws_port}",
            f"--project_id={config.project}",
        )
        return argv, {}
    if name.optional or name is Service.CLOUDTASKS:
        return _python_command(config, name)
    argv = (
        str(fake_gcs_binary()),
        "-scheme",
        "http",
        "-host",
        host,
        "-port",
        str(config.gcs_port),
        "-backend",
        "memory",
        "-event.pubsub-project-id",
        config.project,
        "-event.pubsub-topic",
        config.gcs_notification_topic,
        "-event.list",
        "finalize",
    )
    return argv, {"PUBSUB_EMULATOR_HOST": f"{host}:{config.pubsub_port}"}


def _python_command(config: StackConfig, name: Service) -> tuple[tuple[str, ...], dict[str, str]]:
    here = Path(__file__).resolve().parent
    argv: tuple[str, ...]
    if name is Service.CLOUDTASKS:
        argv = (
            sys.executable,
            str(here / "_cloudtasks.py"),
            f"--host={config.host}",
            f"--port={config.cloudtasks_port}",
        )
        return argv, {}
    if name is Service.CLOUDRUN:
        argv = (
            sys.executable,
            str(here / "_cloudrun.py"),
            f"--host={config.host}",
            f"--port={config.cloudrun_port}",
            f"--state-dir={config.state_dir}",
        )
        return argv, {}
    python = bqemulator_python()
    if python is None:
        raise StackError("bqemulator not found; see `emulators.prerequisites()`")
    argv = (
        str(python),
        str(here / "_bigquery_main.py"),  # bqemulator's CLI, tolerant of being offline
        "start",
        f"--rest-host={config.host}",
        f"--rest-port={config.bigquery_port}",
        f"--grpc-host={config.host}",
        f"--grpc-port={config.bigquery_grpc_port}",
        f"--project={config.project}",
        "--log-level=warning",
    )
    return argv, {}


def _check_config(config: StackConfig) -> None:
    ports = [int(getattr(config, p.attr)) for p in PORTS]
    if len(set(ports)) != len(ports):
        raise StackError(f"stack ports must be distinct, got {ports}; see {sorted(_ENV.values())}")


def _reusable(config: StackConfig, name: Service) -> ProcessRecord | None:
    """The recorded process if it is ours, current and healthy; otherwise clean it up."""
    record = load_record(config.state_dir, name)
    if record is None:
        return None
    argv, _ = _command(config, name)
    if is_running(record) and record.cmd == argv and _answers(_health_url(config, name)):
        return record
    # Dead, hung, or started with other settings (ports, project): replace it.
    stop(record)
    remove_record(config.state_dir, name)
    return None


# A live process of the right command is replaced only when it stays silent this long: on a
# loaded machine one slow answer is not a hang, and replacing fake-gcs-server loses its data.
HUNG_AFTER_S = 15.0


def _answers(url: str) -> bool:
    deadline = time.monotonic() + HUNG_AFTER_S
    while True:
        if http_ok(url, timeout=5.0):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def _check_ports_free(config: StackConfig, name: Service) -> None:
    for attr, port in _ports(config, name):
        try:
            free = port_free(config.host, port)
        except OSError as e:
            raise StackError(f"cannot bind {config.host}:{port} for {name}: {e}") from e
        if not free:
            var = _ENV[attr]
            raise StackError(
                f"port {port} on {config.host} ({name}) is already in use by a process "
                f"not recorded in {config.state_dir}; stop that process, or move the whole "
                f"stack (`--port-base {config.port_base + 100}`, {PORT_BASE_ENV}) or this "
                f"port alone (`export {var}={port + 100}`)"
            )


def _start(config: StackConfig, name: Service) -> ProcessRecord:
    argv, extra_env = _command(config, name)
    record = spawn(
        name,
        "service",
        argv,
        env={**os.environ, **extra_env},
        log=config.log_dir / f"{name}.log",
        cwd=config.state_dir,  # anything an emulator writes lands here, not in the user's cwd
        port=_ports(config, name)[0][1],
    )
    save_record(config.state_dir, record)  # recorded at once so `down` can clean a failed `up`
    return record


def _wait_healthy(
    config: StackConfig, pending: dict[Service, tuple[ProcessRecord, float]], deadline: float
) -> None:
    """Block until every pending service answers its health check; record its startup time."""
    while pending:
        for name, (record, t0) in list(pending.items()):
            if http_ok(_health_url(config, name), timeout=0.5):
                ready = round(time.monotonic() - t0, 3)
                save_record(config.state_dir, replace(record, ready_seconds=ready))
                del pending[name]
            elif not is_running(record) or time.monotonic() >= deadline:
                dead = not is_running(record)
                for other, _ in pending.values():
                    stop(other)
                    remove_record(config.state_dir, other.name)
                why = "exited during startup" if dead else "did not become healthy in time"
                raise StackError(
                    f"{name} emulator {why} (health check {_health_url(config, name)}); "
                    f"log {record.log}:\n{log_tail(record.log)}"
                )
        if pending:
            time.sleep(0.05)


def _ensure_topic(config: StackConfig) -> None:
    url = (
        f"{_url(config, Service.PUBSUB)}/v1/projects/{config.project}"
        f"/topics/{config.gcs_notification_topic}"
    )
    try:
        code, body = http_request("PUT", url, b"{}", headers={"Content-Type": "application/json"})
    except OSError as e:
        raise StackError(f"cannot create the GCS notification topic at {url}: {e}") from e
    if code not in (200, 409):  # 409: it already exists
        raise StackError(f"creating topic {url} failed: HTTP {code} {body[:300]!r}")


def _expected(config: StackConfig, asked: Collection[Service]) -> list[Service]:
    """The core, the optional services asked for, and those this stack started before (a
    crashed one comes back; a running one is kept until `down`)."""
    return [
        s
        for s in Service
        if not s.optional or s in asked or load_record(config.state_dir, s) is not None
    ]


def up(
    config: StackConfig, *, services: Collection[Service] = (), timeout: float = 60.0
) -> StackStatus:
    """Start (or reuse) Pub/Sub, Firestore, fake-gcs-server and the optional `services` (and
    those started before) and wait until all are healthy."""
    _check_config(config)
    deadline = time.monotonic() + timeout
    with state_lock(config.state_dir):
        expected = _expected(config, services)
        missing = prerequisites(expected)
        if missing:
            raise StackError(
                "cannot start the local stack, missing:\n  - " + "\n  - ".join(missing)
            )
        config.log_dir.mkdir(parents=True, exist_ok=True)
        keep = {name: _reusable(config, name) for name in expected}
        to_start = [name for name, rec in keep.items() if rec is None]
        for name in to_start:  # all port conflicts reported before anything is spawned
            _check_ports_free(config, name)
        pending: dict[Service, tuple[ProcessRecord, float]] = {}
        # The two JVMs start in parallel; fake-gcs-server waits for Pub/Sub and its topic.
        for name in (Service.PUBSUB, Service.FIRESTORE):
            if name in to_start:
                pending[name] = (_start(config, name), time.monotonic())
        _wait_healthy(config, {k: v for k, v in pending.items() if k == Service.PUBSUB}, deadline)
        pending.pop(Service.PUBSUB, None)
        _ensure_topic(config)  # every time: a restarted Pub/Sub emulator forgot its topics
        for name in to_start:
            if name not in (Service.PUBSUB, Service.FIRESTORE):
                pending[name] = (_start(config, name), time.monotonic())
        _wait_healthy(config, pending, deadline)
    return status(config)


def _service_status(config: StackConfig, name: Service, rss: dict[int, int]) -> ServiceStatus:
    record = load_record(config.state_dir, name)
    running = record is not None and is_running(record)
    log = Path(record.log) if record is not None else config.log_dir / f"{name}.log"
    return ServiceStatus(
        name=name,
        kind="service",
        pid=record.pid if record is not None and running else None,
        port=_ports(config, name)[0][1],
        url=_url(config, name),
        healthy=running and http_ok(_health_url(config, name)),
        rss_bytes=rss.get(record.pgid) if record is not None and running else None,
        log=log,
        started_at=record.started_at if record is not None else None,
        startup_seconds=record.ready_seconds if record is not None else None,
        expected=not name.optional or record is not None,
    )


def anything_running(config: StackConfig) -> bool:
    """Whether any recorded process of the stack is alive, healthy or not (no network)."""
    return any(is_running(r) for r in load_records(config.state_dir))


def status(config: StackConfig) -> StackStatus:
    """What is running now, per emulator and recorded function (read-only, no lock)."""
    rss = rss_by_group()
    functions = [r for r in load_records(config.state_dir) if r.kind != "service"]
    return StackStatus(
        project=config.project,
        state_dir=config.state_dir,
        services=tuple(_service_status(config, name, rss) for name in Service),
        functions=tuple(function_status(config, r, rss) for r in functions),
        env=config.env(),
    )


def down(config: StackConfig) -> list[str]:
    """Stop every recorded process (functions first, then emulators in reverse start order)."""
    if not config.state_dir.is_dir():
        return []
    stopped: list[str] = []
    with state_lock(config.state_dir):
        records = load_records(config.state_dir)
        rank = {name.value: i for i, name in enumerate(reversed(Service))}
        records.sort(key=lambda r: (r.kind == "service", rank.get(r.name, -1), r.name))
        functions = [r for r in records if r.kind != "service"]
        # The functions stop together: each gunicorn drains on its own clock (up to seconds),
        # and one after the other they made `down` take several.
        with ThreadPoolExecutor(max_workers=max(1, len(functions))) as pool:
            ended = dict(zip((r.name for r in functions), pool.map(stop, functions), strict=True))
        for record in records:
            if ended[record.name] if record.kind != "service" else stop(record):
                stopped.append(record.name)
            remove_record(config.state_dir, record.name)
    return stopped


def clear_data(config: StackConfig) -> None:
    """Delete every Firestore document (Pub/Sub and GCS are left alone)."""
    url = (
        f"{_url(config, Service.FIRESTORE)}/emulator/v1/projects/{config.project}"
        "/databases/(default)/documents"
    )
    try:
        # The emulator deletes document by document: after wide runs that takes well over the
        # 5 s a probe gets.
        code, body = http_request("DELETE", url, timeout=120.0)
    except OSError as e:
        raise StackError(
            f"Firestore emulator not reachable at {url} ({e}); start it with `kumoflow dev up`"
        ) from e
    if code != 200:
        raise StackError(f"clearing Firestore failed: HTTP {code} {body[:300]!r}")
