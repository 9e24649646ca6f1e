"""The CLI against the running test stack, as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from examples.sample_flow import sample_flow
from orchestrator.runtime import module_digest

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[2]


def kumoflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_run_follow_list_show(stack_env: dict[str, str]) -> None:
    out = as_json(
        kumoflow(
            "run",
            "examples/sample_flow.py:sample_flow",
            "--backend",
            "emulator",
            "--param",
            'json_data=[{"id": 1}]',
            "--param",
            "filename=cli.csv",
            "--json",
        )
    )
    assert out["status"] == "succeeded"
    assert out["result"] == "gs://demo/cli.csv"
    assert out["result_uri"].startswith("gs://kumoflow-results/runs/")
    listed = as_json(kumoflow("runs", "list", "--flow", "sample-flow", "--json"))
    assert out["run_id"] in [r["run_id"] for r in listed]
    shown = as_json(kumoflow("runs", "show", out["run_id"], "--json"))
    assert shown["status"] == "succeeded"
    assert shown["created_at"] <= shown["ended_at"]
    for task in shown["tasks"]:
        (attempt,) = task["history"]
        assert task["result_uri"]
        assert attempt["worker"]
        assert attempt["started_at"] <= attempt["ended_at"]
        # The code the stack's task worker imported: the example's file.
        assert attempt["code"] == module_digest(sample_flow.fn)


def test_no_wait_failure_exit_and_dead_letters(stack_env: dict[str, str]) -> None:
    started = as_json(
        kumoflow(
            "run",
            "tests.flows.basic:picky_flow",
            "--backend",
            "emulator",
            "--param",
            "kind=value",
            "--no-wait",
            "--json",
        )
    )
    assert started["status"] == "started"
    failed = kumoflow(
        "run",
        "tests.flows.basic:picky_flow",
        "--backend",
        "emulator",
        "--param",
        "kind=value",
        "--json",
    )
    assert failed.returncode == 1
    assert "ValueError" in json.loads(failed.stdout)["error"]
    bad = kumoflow("trigger", "publish", "kumoflow-run-requests", "--data", "not json", "--json")
    assert bad.returncode == 0, bad.stderr
    assert isinstance(as_json(kumoflow("dlq", "list", "--json")), list)
    missing = kumoflow("runs", "show", "no-such-run", "--json")
    assert missing.returncode == 2
    assert "kumoflow runs list" in json.loads(missing.stdout)["error"]


def test_dev_status_and_env(stack_env: dict[str, str]) -> None:
    status = as_json(kumoflow("dev", "status", "--json"))
    assert status["healthy"] is True
    assert {f["name"] for f in status["functions"]} >= {
        "run-starter",
        "task-worker",
        "orchestrator",
        "sweeper",
    }
    env = kumoflow("dev", "env")
    assert f"PUBSUB_EMULATOR_HOST={stack_env['PUBSUB_EMULATOR_HOST']}" in env.stdout


def test_each_function_runs_with_the_publish_grants_terraform_gives_it(
    stack_env: dict[str, str],
) -> None:
    """The stack's functions may publish only where IAM would let them in the cloud."""
    from orchestrator.local import FUNCTIONS

    grants = {fn.name.replace("_", "-"): ",".join(fn.publishes) for fn in FUNCTIONS}
    status = as_json(kumoflow("dev", "status", "--json"))
    for function in status["functions"]:
        if function["name"] not in grants:
            continue  # a test's own function
        raw = Path(f"/proc/{function['pid']}/environ").read_bytes()
        env = dict(item.partition(b"=")[::2] for item in raw.split(b"\0") if item)
        what = f"{function['name']} (pid {function['pid']}: {env.get(b'_', b'?')!r})"
        assert env.get(b"KUMOFLOW_PUBLISHES", b"").decode() == grants[function["name"]], what


def test_cancel_a_running_run(stack_env: dict[str, str], tmp_path: Path) -> None:
    started = as_json(
        kumoflow(
            "run",
            "tests.flows.basic:retrying_slowly",
            "--backend",
            "emulator",
            "--param",
            f"counter={tmp_path / 'c'}",
            "--param",
            "failures=5",
            "--param",
            f"after_counter={tmp_path / 'a'}",
            "--no-wait",
            "--json",
        )
    )
    deadline = time.monotonic() + 20
    while kumoflow("runs", "show", started["run_id"], "--json").returncode != 0:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    cancelled = as_json(kumoflow("runs", "cancel", started["run_id"], "--json"))
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"] == "Cancelled: cancelled from the CLI"
    assert all(t["status"] in ("cancelled", "failed") for t in cancelled["tasks"])
    assert not (tmp_path / "a").exists()
