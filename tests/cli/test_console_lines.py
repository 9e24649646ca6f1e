"""`kumoflow run` prints a line above its progress table for each attempt that failed, retried
(with the delay) or lost its lease, as it happens; `--quiet` hides them, `--json` is unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.cli import attempt_lines
from orchestrator.contracts import Attempt, ErrorInfo, RetryPolicy, TaskRun, TaskStatus

ROOT = Path(__file__).resolve().parents[2]
FLAKY = """
import sys

from orchestrator import flow, task

CALLS = {"n": 0}


@task(name="fetch", retries=3, retry_delay_seconds=1)
def fetch(x: int) -> int:
    CALLS["n"] += 1  # in-process: one module for every attempt
    if CALLS["n"] == 1:
        raise ValueError("upstream [b]busy[/b]")
    print("fetched", x, file=sys.stderr)  # through the streams the live display holds
    return 2 * x


@flow(name="flaky")
def flaky(x: int = 2) -> int:
    return fetch(x)
"""
LINE = (
    "task fetch attempt 1 failed: ValueError: upstream [b]busy[/b]; "
    "retrying in 1 s (attempt 2 of 4)"
)


def _run(tmp: Path, *args: str, terminal: bool = False) -> subprocess.CompletedProcess[str]:
    (tmp / "flaky.py").write_text(FLAKY)
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    env["PYTHONPATH"] = str(ROOT)
    if terminal:  # rich then drives a live display (and redirects the streams) as on a tty
        env.update(FORCE_COLOR="1", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "flaky.py:flaky", *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_failed_attempt_prints_its_line_with_the_delay_before_the_final_table(
    tmp_path: Path,
) -> None:
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == 4
    err = proc.stderr
    assert LINE in err, err
    assert err.index(LINE) < err.rindex("flaky  run ")  # above the table (its last frame)
    assert err.count("attempt 1 failed") == 1  # once, not once per redraw


def test_on_a_terminal_the_line_goes_above_the_live_table_and_the_run_ends(
    tmp_path: Path,
) -> None:
    # The live display redirects stdout/stderr while the worker tees them: the first line
    # once wrote to itself forever (the run hung). The timeout above fails the test instead.
    proc = _run(tmp_path, terminal=True)
    assert proc.returncode == 0, proc.stderr
    assert LINE in proc.stderr
    assert proc.stderr.index(LINE) < proc.stderr.rindex("SUCCEEDED")
    assert "[]" not in proc.stderr  # statuses without a colour once showed as "[]PENDING"


def test_quiet_hides_the_lines_and_keeps_the_table(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "attempt 1 failed" not in proc.stderr
    assert "flaky  run " in proc.stderr


def test_json_output_is_unchanged(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"run_id", "flow", "status", "result", "error", "tasks"}
    assert out["tasks"] == [{"key": "fetch", "name": "fetch", "status": "succeeded", "attempts": 2}]
    assert "attempt 1 failed" not in proc.stderr


T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _attempt(n: int, status: TaskStatus, error: ErrorInfo | None = None) -> Attempt:
    return Attempt(number=n, status=status, queued_at=T0, ended_at=T0, token=f"t{n}", error=error)


def test_lines_for_a_lost_lease_a_last_failure_and_a_task_not_retried() -> None:
    lease = ErrorInfo(type="LeaseExpired", message="attempt 1 of 'load' stopped renewing its lease")
    boom = ErrorInfo(type="KeyError", message="'id'\nmore lines of it")
    tasks = {
        "load": TaskRun(
            run_id="r1",
            key="load",
            node="load",
            name="load",
            status=TaskStatus.SCHEDULED,
            attempts=(
                _attempt(1, TaskStatus.FAILED, lease),
                _attempt(2, TaskStatus.SCHEDULED),
            ),
        ),
        "save[3]": TaskRun(
            run_id="r1",
            key="save[3]",
            node="save",
            name="save",
            status=TaskStatus.FAILED,
            attempts=(_attempt(1, TaskStatus.FAILED, boom), _attempt(2, TaskStatus.FAILED, boom)),
        ),
        "pick": TaskRun(
            run_id="r1",
            key="pick",
            node="pick",
            name="pick",
            status=TaskStatus.FAILED,
            attempts=(_attempt(1, TaskStatus.FAILED, boom),),
        ),
    }
    retry = {
        "load": RetryPolicy(retries=3, delay_seconds=(5.0, 10.0)),
        "save": RetryPolicy(retries=1, delay_seconds=2.5),
        "pick": RetryPolicy(retries=2, retry_on=("builtins.ValueError",)),
    }
    seen: set[tuple[str, int]] = set()
    assert [line for line, _ in attempt_lines(tasks, retry, seen)] == [
        "task load attempt 1 lost its lease (attempt 1 of 'load' stopped renewing its lease); "
        "retrying in 5 s (attempt 2 of 4)",
        "task save[3] attempt 1 failed: KeyError: 'id'; retrying in 2.5 s (attempt 2 of 2)",
        "task save[3] attempt 2 failed: KeyError: 'id'; no retries left (attempt 2 of 2)",
        "task pick attempt 1 failed: KeyError: 'id'; not retried (not an exception its "
        "retry_on names)",
    ]
    assert attempt_lines(tasks, retry, seen) == []  # each once
