"""Local Cloud Run functions: one functions-framework process per target, as infra/ wires them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

from ._config import Service, StackConfig, StackError
from ._net import port_accepts, port_free
from ._process import (
    ProcessRecord,
    is_running,
    load_record,
    log_tail,
    remove_record,
    rss_by_group,
    save_record,
    spawn,
    state_lock,
    stop,
)
from ._status import ServiceStatus

__all__ = ["function_status", "start_function", "stop_function"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise StackError(
            f"function name {name!r} must match {_NAME_RE.pattern} (used as a file name)"
        )
    if name in tuple(Service):
        raise StackError(f"function name {name!r} is reserved for an emulator; pick another name")


def _target_of(cmd: tuple[str, ...]) -> str | None:
    try:
        return cmd[cmd.index("--target") + 1]
    except (ValueError, IndexError):
        return None


def function_status(
    config: StackConfig, record: ProcessRecord, rss: dict[int, int]
) -> ServiceStatus:
    running = is_running(record)
    return ServiceStatus(
        name=record.name,
        kind=record.kind,
        pid=record.pid if running else None,
        port=record.port,
        url=f"http://{config.host}:{record.port}/" if record.port else "",
        # A port-less helper (the local scheduler) is healthy while it runs.
        healthy=running and (not record.port or port_accepts(config.host, record.port)),
        rss_bytes=rss.get(record.pgid) if running else None,
        log=Path(record.log),
        started_at=record.started_at,
        startup_seconds=record.ready_seconds,
        target=_target_of(record.cmd),
    )


def start_function(
    config: StackConfig,
    name: str,
    *,
    target: str,
    source: Path,
    port: int,
    env: dict[str, str],
    threads: int = 16,
    timeout: float = 30.0,
) -> ServiceStatus:
    """Run `target` from `source` under functions-framework (CloudEvent signature) on `port`.

    The process gets the stack's env (emulator hosts, project, push auth off), then `env`, and
    THREADS for gunicorn's thread pool. A running one with the same command and env is reused.
    """
    _check_name(name)
    source = source.expanduser().resolve()
    if not source.exists():
        raise StackError(f"function source {source} does not exist")
    cmd = (
        sys.executable,
        "-m",
        "functions_framework",
        "--target",
        target,
        "--source",
        str(source),
        "--signature-type",
        "cloudevent",
        "--host",
        config.host,
        "--port",
        str(port),
    )
    # The Pub/Sub emulator pushes without an OIDC token, so push auth is off here, explicitly
    # (it fails closed when unset); `env` may still turn it on.
    run_env = {
        **config.env(),
        "KUMOFLOW_PUSH_AUTH": "off",
        **env,
        "THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
    }
    spec = hashlib.sha256(json.dumps(sorted(run_env.items())).encode()).hexdigest()[:16]
    with state_lock(config.state_dir):
        old = load_record(config.state_dir, name)
        if old is not None:
            if (
                is_running(old)
                and old.cmd == cmd
                and old.spec == spec
                and port_accepts(config.host, port)
            ):
                return function_status(config, old, rss_by_group())
            stop(old)
            remove_record(config.state_dir, name)
        try:
            free = port_free(config.host, port)
        except OSError as e:
            raise StackError(f"cannot bind {config.host}:{port} for function {name!r}: {e}") from e
        if not free:
            raise StackError(
                f"port {port} on {config.host} (function {name!r}) is already in use by a "
                f"process not recorded in {config.state_dir}; stop it or give the function "
                "another port"
            )
        t0 = time.monotonic()
        record = spawn(
            name,
            "function",
            cmd,
            env={**os.environ, **run_env},
            log=config.log_dir / f"{name}.log",
            # Cloud Run runs functions with the source directory as cwd.
            cwd=source if source.is_dir() else source.parent,
            port=port,
            spec=spec,
        )
        save_record(config.state_dir, record)
        deadline = t0 + timeout
        while not port_accepts(config.host, port, timeout=0.2):
            dead = not is_running(record)
            if dead or time.monotonic() >= deadline:
                stop(record)
                remove_record(config.state_dir, name)
                why = "exited during startup" if dead else f"did not listen within {timeout}s"
                raise StackError(
                    f"function {name!r} (target {target!r}) {why}; "
                    f"log {record.log}:\n{log_tail(record.log)}"
                )
            time.sleep(0.05)
        record = replace(record, ready_seconds=round(time.monotonic() - t0, 3))
        save_record(config.state_dir, record)
        return function_status(config, record, rss_by_group())


def stop_function(config: StackConfig, name: str) -> bool:
    """Stop a recorded function; True if a running process was stopped."""
    _check_name(name)
    if not config.state_dir.is_dir():
        return False
    with state_lock(config.state_dir):
        record = load_record(config.state_dir, name)
        if record is None or record.kind != "function":
            return False
        stopped = stop(record)
        remove_record(config.state_dir, name)
        return stopped
