"""The CLI on the in-process backend: JSON output, targets, progress, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDS = '[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]'


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_json_output_is_one_object() -> None:
    proc = _cli(
        "run",
        "examples/sample_flow.py:sample_flow",
        "--param",
        f"json_data={RECORDS}",
        "--param",
        "filename=cli.csv",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "succeeded"
    assert out["flow"] == "sample-flow"
    assert out["result"] == "gs://demo/cli.csv"
    assert out["error"] is None
    assert out["tasks"] == [
        {"key": "create-csv-file", "name": "create-csv-file", "status": "succeeded", "attempts": 1},
        {"key": "upload-to-gcs", "name": "upload-to-gcs", "status": "succeeded", "attempts": 1},
    ]
    assert set(out) == {"run_id", "flow", "status", "result", "error", "tasks"}


def test_cli_module_target_and_failure_exit_code(tmp_path: Path) -> None:
    proc = _cli("run", "tests.flows.basic:picky_flow", "--param", "kind=value", "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["status"] == "failed"
    assert "picky" in out["error"]
    assert "ValueError" in out["error"]


def test_cli_shows_progress_and_result() -> None:
    proc = _cli("run", "examples/diamond.py:diamond", "--param", "n=3")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"total": 6, "squares": 14}
    assert "SUCCEEDED" in proc.stderr
    assert "report" in proc.stderr


def test_cli_bad_target_says_what_to_do() -> None:
    proc = _cli("run", "examples/diamond.py:nope")
    assert proc.returncode == 2
    assert "no @flow named 'nope'" in proc.stderr
    assert "diamond" in proc.stderr
    proc = _cli("run", "examples/diamond.py:diamond", "--param", "zzz=1")
    assert proc.returncode == 2
    assert "has no parameter 'zzz'" in proc.stderr
