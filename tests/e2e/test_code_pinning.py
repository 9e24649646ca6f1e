"""Runs keep their code across a redeploy on the stack: a run started before a code change
finishes on its old code (a worker is kept for it), a run started after uses the new code, and
`runs show` names the code each attempt ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import RunRequested, TaskStatus

pytestmark = pytest.mark.emulator

FLOW = """
import time

from orchestrator import flow, task

CODE = "{code}"


@task
def first() -> str:
    return CODE


@task
def slow(x: str) -> str:
    time.sleep(4)
    return x + "+" + CODE


@task
def last(x: str) -> str:
    return x + "+" + CODE


@flow(name="codepin")
def codepin() -> str:
    return last(slow(first()))
"""


def _cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args, "--json"],
        env={**os.environ, **env},
        capture_output=True,
        check=False,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _start(rt: Any) -> str:
    run_id = f"codepin-{uuid.uuid4().hex[:10]}"
    rt.publish(rt.topics.runs, RunRequested(flow="codepin", run_id=run_id), event_id=run_id)
    return run_id


def _until(what: str, check: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_redeploy_mid_run_keeps_the_run_on_its_code(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    from orchestrator.local import stack_runtime
    from orchestrator.runtime import code_digest

    file = tmp_path / "codepin_flow.py"
    file.write_text(FLOW.format(code="v1"))
    v1 = code_digest([file])
    (first,) = _cli(stack_env, "deploy", str(file))
    rt = stack_runtime()
    old = _start(rt)

    def first_done() -> bool:
        snap = rt.state.load(old)
        return bool(
            snap and snap.tasks.get("first") and snap.tasks["first"].status is TaskStatus.SUCCEEDED
        )

    _until("the first task of the old run", first_done)
    file.write_text(FLOW.format(code="v2"))
    v2 = code_digest([file])
    t0 = time.monotonic()
    (second,) = _cli(stack_env, "deploy", str(file))  # while `slow` runs on v1
    print(f"redeploy took {time.monotonic() - t0:.1f} s")
    assert second["version"] != first["version"]
    assert second["kept"] == [v1]
    new = _start(rt)

    def shown(run_id: str) -> Any:
        out = _cli(stack_env, "runs", "show", run_id)
        return out if out["status"] in ("succeeded", "failed", "cancelled") else None

    before = _until("the old run's end", lambda: shown(old), timeout=240)
    after = _until("the new run's end", lambda: shown(new), timeout=240)
    assert before["status"] == "succeeded", before
    assert before["result"] == "v1+v1+v1"
    assert before["code"] == v1
    assert after["status"] == "succeeded", after
    assert after["result"] == "v2+v2+v2"
    assert after["code"] == v2

    # Each attempt names the code its worker imported: the module of that bundle.
    def module_code(run: Any) -> set[str]:
        return {a["code"] for t in run["tasks"] for a in t["history"] if a["status"] == "SUCCEEDED"}

    assert len(module_code(before)) == 1
    assert len(module_code(after)) == 1
    assert module_code(before) != module_code(after)
    # The old code's runs have ended: the next deploy stops its worker.
    (third,) = _cli(stack_env, "deploy", str(file))
    assert third["kept"] == []
    status = _cli(stack_env, "dev", "status")
    assert f"task-worker-{v1}" not in {f["name"] for f in status["functions"]}
