"""Baseline: Prefect 3's in-process `.map` of the same width with a fan-in.

Prefect goes into the harness's own venv (`.bench/prefect-venv`, made on first use with
`python -m venv` + `pip install 'prefect>=3,<4'`), never into kumoflow's. Each width runs in a
fresh subprocess with PREFECT_API_URL unset and a fresh PREFECT_HOME, so Prefect starts its
temporary local server (ephemeral mode) on a new SQLite database, offline; the first one-item
flow run (server start) is timed apart. Failures are returned as text, never raised."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._counts import ROOT, clean_env

VENV = ROOT / ".bench" / "prefect-venv"
SCRIPT = Path(__file__).resolve().with_name("_prefect_map.py")
REQUIREMENT = "prefect>=3,<4"


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def ensure_venv(log: Any = print) -> tuple[Path | None, str]:
    """The venv's python and Prefect's version, or None and why it is not available."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import prefect; print(prefect.__version__)"]
    env = clean_env()
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True, env=env, check=False)
        if found.returncode == 0:
            return python, found.stdout.strip()
    log(f"installing {REQUIREMENT} into {VENV} (first use; a few minutes)")
    steps = [
        [sys.executable, "-m", "venv", str(VENV)],
        [str(python), "-m", "pip", "install", "--quiet", REQUIREMENT],
    ]
    for step in steps:
        try:
            done = subprocess.run(
                step, capture_output=True, text=True, env=env, timeout=1200, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"`{' '.join(step)}` failed: {e}"
        if done.returncode != 0:
            return None, f"`{' '.join(step)}` exited {done.returncode}: {_tail(done.stderr)}"
    found = subprocess.run(probe, capture_output=True, text=True, env=env, check=False)
    if found.returncode != 0:
        return None, f"prefect does not import after install: {_tail(found.stderr)}"
    return python, found.stdout.strip()


def run(
    python: Path, width: int, timeout: float, *, run_time: bool = False
) -> dict[str, Any] | str:
    """One measured run at `width`: the JSON the script prints, or why there is none."""
    with tempfile.TemporaryDirectory(prefix="kumoflow-bench-prefect-") as home:
        env = clean_env()
        for key in [k for k in env if k.startswith("PREFECT_")]:
            del env[key]  # PREFECT_API_URL above all: no server of anyone else's
        env.update(
            PREFECT_HOME=home,
            PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="true",
            PREFECT_LOGGING_LEVEL="WARNING",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
        )
        try:
            done = subprocess.run(
                [str(python), str(SCRIPT), str(width), *(["run-time"] if run_time else [])],
                capture_output=True,
                text=True,
                env=env,
                cwd=home,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"did not finish within {timeout:.0f} s"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return f"exited {done.returncode}: {_tail(done.stderr)}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def baseline(widths: list[int], timeout_of: Any, log: Any = print) -> dict[str, Any]:
    """{"version": ..., "runs": {width: result or reason}} or {"error": reason}."""
    python, version = ensure_venv(log)
    if python is None:
        return {"error": version}
    runs: dict[int, dict[str, Any] | str] = {}
    for width in widths:
        log(f"Prefect {version}: .map of {width} + fan-in, in-process (ephemeral server)")
        runs[width] = run(python, width, timeout_of(width))
    return {"version": version, "runs": runs, "python": os.fspath(python)}
