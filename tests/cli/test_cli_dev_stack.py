"""`kumoflow dev` on a stack of its own beside the test stack: --port-base on every command,
optional services started only when asked (--with) or when a deployed flow calls them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import emulators
from orchestrator.emulators import PORTS

_MISSING = emulators.prerequisites(tuple(emulators.Service))
pytestmark = [
    pytest.mark.emulator,
    pytest.mark.skipif(
        bool(_MISSING) and os.environ.get("CI") != "true",
        reason="local emulator stack unavailable: " + "; ".join(_MISSING),
    ),
]
ROOT = Path(__file__).resolve().parents[2]
# Past the test stack's own ports (its base + 1 .. + 10 and the functions after them).
BASE = int(os.environ.get("KUMOFLOW_TEST_PORT_BASE", "18680")) + 30

_BQ_FLOW = """
from orchestrator import flow
from orchestrator.gcp import GcpCredentials, bigquery_query


@flow(name="counts-rows")
def counts_rows(sql: str = "SELECT COUNT(*) FROM d.t") -> object:
    return bigquery_query(sql, GcpCredentials.load("local"))
"""


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A clean environment: no port variable of the test stack, a state folder of its own."""
    settings = {p.env for p in PORTS} | {emulators.PORT_BASE_ENV}
    clean = {k: v for k, v in os.environ.items() if k not in settings}
    clean["KUMOFLOW_STATE_DIR"] = str(tmp_path / "state")
    yield clean
    subprocess.run(  # whatever a failed assertion left running
        [sys.executable, "-m", "orchestrator", "dev", "down", "--port-base", str(BASE)],
        env=clean,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _dev(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def _by_name(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in state["services"]}


def _bqemulators_on(port: int) -> list[int]:
    """PIDs of any bqemulator serving `port` on this machine."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"--rest-port={port}".encode() in argv:
            found.append(int(proc.name))
    return found


def test_a_stack_on_its_own_port_base_starts_bigquery_only_when_asked(
    env: dict[str, str], tmp_path: Path
) -> None:
    base = str(BASE)
    state = _json(_dev(env, "dev", "up", "--port-base", base, "--json"))
    assert state["healthy"] is True
    assert state["running"] == ["pubsub", "firestore", "gcs", "cloudtasks"]
    assert state["not_started"] == ["bigquery", "cloudrun"]
    services = _by_name(state)
    assert services["pubsub"]["port"] == BASE + 1
    assert services["bigquery"]["state"] == "not started"
    assert services["bigquery"]["pid"] is None
    assert _bqemulators_on(BASE + 5) == []
    functions = {f["name"]: f for f in state["functions"]}
    assert functions["run-starter"]["port"] == BASE + 10

    again = _dev(env, "dev", "up", "--port-base", base)  # reuses, and says what runs
    assert again.returncode == 0, again.stderr
    assert "not started: bigquery, cloudrun (kumoflow dev up --with bigquery,cloudrun)" in (
        again.stdout
    )

    status = _json(_dev(env, "dev", "status", "--port-base", base, "--json"))
    assert status["healthy"] is True
    assert _by_name(status)["pubsub"]["pid"] == services["pubsub"]["pid"]
    assert _by_name(status)["cloudrun"]["state"] == "not started"
    shown = _dev(env, "dev", "status", "--port-base", base)
    assert "not started" in shown.stdout
    assert "unhealthy" not in shown.stdout

    exports = _dev(env, "dev", "env", "--port-base", base).stdout
    assert f"PUBSUB_EMULATOR_HOST=127.0.0.1:{BASE + 1}" in exports
    assert f"KUMOFLOW_PORT_BASE={BASE}" in exports
    by_var = _json(_dev({**env, "KUMOFLOW_PORT_BASE": base}, "dev", "status", "--json"))
    assert _by_name(by_var)["firestore"]["pid"] == services["firestore"]["pid"]

    # A deployed flow that queries BigQuery brings bqemulator up; Cloud Run stays off.
    flows = tmp_path / "bq_flows.py"
    flows.write_text(_BQ_FLOW)
    deployed = _json(_dev({**env, "KUMOFLOW_PORT_BASE": base}, "deploy", str(flows), "--json"))
    assert deployed[0]["uses"] == ["bigquery"]
    after_deploy = _by_name(_json(_dev(env, "dev", "status", "--port-base", base, "--json")))
    assert after_deploy["bigquery"]["state"] == "healthy"
    assert _bqemulators_on(BASE + 5) == [after_deploy["bigquery"]["pid"]]
    assert after_deploy["cloudrun"]["state"] == "not started"

    with_run = _json(_dev(env, "dev", "up", "--port-base", base, "--with", "cloudrun", "--json"))
    assert with_run["not_started"] == []
    assert _by_name(with_run)["bigquery"]["pid"] == after_deploy["bigquery"]["pid"]  # kept

    stopped = _json(_dev(env, "dev", "down", "--port-base", base, "--json"))
    assert {"pubsub", "bigquery", "cloudrun", "run-starter"} <= set(stopped)
    final = _json(_dev(env, "dev", "status", "--port-base", base, "--json"))
    assert final["running"] == []
    assert final["healthy"] is False
    assert _bqemulators_on(BASE + 5) == []
