"""The harness side of the operation counts: turn counting on for this process and every Python
process it starts (the stack's functions, the local scheduler), and read the totals back.

The counting itself lives in `_site/` (a sitecustomize + kumoflow_bench_counts): each process
writes its running totals to `<dir>/<role>.<pid>.json`; here they are summed per role."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE_DIR = Path(__file__).resolve().with_name("_site")
ENV = "KUMOFLOW_BENCH_COUNTS"
# The functions a run goes through; the sweeper is ticked on a timer (every 0.5 s locally, once
# a minute in the cloud), so its cost is per minute, not per task, and is reported apart.
RUN_ROLES = ("run_starter", "task_worker", "orchestrator")
Counts = dict[str, float]
ByRole = dict[str, Counts]


def enable(directory: Path) -> None:
    """Count here and in every Python process started from now on (env is inherited)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(directory)
    # The repo root too: the functions then import kumoflow from this working tree.
    paths = [str(SITE_DIR), str(ROOT), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    if str(SITE_DIR) not in sys.path:
        sys.path.insert(0, str(SITE_DIR))
    counter = importlib.import_module("kumoflow_bench_counts")
    counter.install(role="harness", directory=str(directory))


def clean_env() -> dict[str, str]:
    """This process's environment without the counting (for processes that are not measured)."""
    env = dict(os.environ)
    env.pop(ENV, None)
    paths = [p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p and p != str(SITE_DIR)]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def harness_now() -> Counts:
    counter = importlib.import_module("kumoflow_bench_counts")
    return dict(counter.snapshot())


def totals(directory: Path) -> ByRole:
    out: ByRole = {}
    for path in directory.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # replaced while we read it: the next read sees it
        role = out.setdefault(str(data["role"]), {})
        for key, value in data["counts"].items():
            role[key] = role.get(key, 0) + float(value)
    return out


def diff(after: ByRole, before: ByRole) -> ByRole:
    out: ByRole = {}
    for role, counts in after.items():
        base = before.get(role, {})
        out[role] = {k: v - base.get(k, 0) for k, v in counts.items() if v - base.get(k, 0)}
    return out


def combine(by_role: ByRole, roles: tuple[str, ...] = RUN_ROLES) -> Counts:
    out: Counts = {}
    for role in roles:
        for key, value in by_role.get(role, {}).items():
            out[key] = out.get(key, 0) + value
    return out


def settled(directory: Path, timeout: float = 20.0) -> ByRole:
    """Totals once the run's functions have stopped counting (two reads a flush apart agree)."""
    deadline = time.monotonic() + timeout
    last = combine(totals(directory))
    while True:
        time.sleep(1.2)  # > two flush periods
        now = totals(directory)
        if combine(now) == last or time.monotonic() > deadline:
            return now
        last = combine(now)


def calls(by_role: ByRole, role: str) -> int:
    return int(by_role.get(role, {}).get("fn_calls", 0))
