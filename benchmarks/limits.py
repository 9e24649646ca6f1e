"""What a concurrency limit costs: a map of N trivial tasks and a fan-in on the local stack,
each item under `concurrency=` with a limit of 10, of 100, and the same map with no limit
(the baseline, measured in the same run): wall time, Firestore operations per task (reads,
writes, deletes, queries and their total) and $ per 1,000 tasks, each beside the unlimited
run's (ratio for time and money, difference for operations). Prints a table; asserts nothing.

    python -m benchmarks.limits [--width 1000] [--limits 10,100] [--runs 1] [--json]

Operations are counted by benchmarks/_site as in benchmarks.width (every stack process).
The functions a run goes through are counted per task; the sweeper (it renews or frees slots
whose lease ran out) is counted apart, per task too, since its ticks also cost while idle. A
task is one of the N mapped tasks or the fan-in: tasks = N + 1. The stack runs on its own
ports from KUMOFLOW_BENCH_LIMITS_PORT_BASE (default 22680) and is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import _cost, _counts
from benchmarks.width import KumoRun, kumo_run, log
from orchestrator.testing import stack_env

BASE = int(os.environ.get("KUMOFLOW_BENCH_LIMITS_PORT_BASE", "22680"))
ENV = stack_env(BASE, f"/tmp/kumoflow-bench-limits-{BASE}")
OPS = ("fs_read", "fs_write", "fs_delete", "fs_queries")
TARGET_EXTRA_OPS = 3  # what a limit may cost per task over the unlimited map


@dataclass
class Case:
    limit: int | None  # None: the plain map, no concurrency key
    runs: list[KumoRun]

    @property
    def name(self) -> str:
        return "none" if self.limit is None else str(self.limit)

    def median(self) -> KumoRun | None:
        ok = sorted((r for r in self.runs if r.ok), key=lambda r: r.seconds)
        return ok[len(ok) // 2] if ok else None


def per_task(run: KumoRun, roles: tuple[str, ...] = _counts.RUN_ROLES) -> dict[str, float]:
    counts = _counts.combine(run.ops, roles)
    out = {k: counts.get(k, 0) / run.tasks for k in OPS}
    out["fs_ops"] = _cost.firestore_ops(counts) / run.tasks
    out["usd_per_1000"] = _cost.per_1000_tasks(counts, run.tasks)["total"]
    return out


def measure(width: int, limits: list[int], runs: int, timeout: float) -> list[Case]:
    """The unlimited map and each limit, alternating run by run (the emulator drifts); each
    run on an empty Firestore. The stack is started here and stopped before returning."""
    from benchmarks._watch import FinishListener
    from benchmarks._width_flow import LIMIT_KEY, limited_map, width_map
    from orchestrator import emulators
    from orchestrator.local import DevStack, down, up
    from orchestrator.runtime import TOPICS, set_limit
    from orchestrator.testing import StackBackend

    counts_dir = Path(os.environ[_counts.ENV])
    stack = DevStack.from_env()
    down(stack)  # a stale stack on these ports would lack the counting env
    up(stack)
    os.environ.update(stack.env())
    cases = [Case(None, []), *(Case(n, []) for n in limits)]
    listener = FinishListener(stack.config.project, TOPICS.finished)
    try:
        backend = StackBackend()
        state_dir = stack.config.state_dir
        for flow in (width_map, limited_map):  # warm-up: loads every function and both flows
            set_limit(backend.rt, LIMIT_KEY, 1000)
            warm = kumo_run(backend, listener, state_dir, counts_dir, 10, 120, flow)
            log(f"warm-up {flow.name}: {warm.status} in {warm.seconds:.1f} s")
        for index in range(runs):
            for case in cases:
                emulators.clear_data(stack.config)
                if case.limit is not None:
                    set_limit(backend.rt, LIMIT_KEY, case.limit)
                flow = width_map if case.limit is None else limited_map
                log(f"run {index + 1}/{runs}, limit {case.name}: {width} wide")
                done = kumo_run(backend, listener, state_dir, counts_dir, width, timeout, flow)
                log(f"  -> {done.status} in {done.seconds:.1f} s")
                case.runs.append(done)
    finally:
        listener.close()
        down(stack)
    return cases


def table(cases: list[Case], width: int) -> list[str]:
    base_run = cases[0].median()
    base = per_task(base_run) if base_run else None
    rows = [
        f"{width} wide map + fan-in ({width + 1} tasks), median run per limit; beside the "
        "unlimited map: time and $ as a ratio, operations as a difference",
        f"{'limit':>6} {'wall s':>8} {'x':>6} {'reads':>7} {'writes':>7} {'deletes':>7} "
        f"{'queries':>7} {'fs ops':>7} {'+ops':>6} {'$/1000':>8} {'x':>6} {'sweeper ops':>11}",
    ]
    for case in cases:
        run = case.median()
        if run is None:
            status = case.runs[-1].status if case.runs else "not run"
            rows.append(f"{case.name:>6} {status}")
            continue
        pt = per_task(run)
        sweeper = per_task(run, ("sweeper",))["fs_ops"]
        wall_x = run.seconds / base_run.seconds if base_run else None
        extra = pt["fs_ops"] - base["fs_ops"] if base else None
        usd_x = pt["usd_per_1000"] / base["usd_per_1000"] if base else None
        rows.append(
            f"{case.name:>6} {run.seconds:8.1f} {_x(wall_x):>6} {pt['fs_read']:7.2f} "
            f"{pt['fs_write']:7.2f} {pt['fs_delete']:7.2f} {pt['fs_queries']:7.2f} "
            f"{pt['fs_ops']:7.2f} {_plus(extra):>6} {pt['usd_per_1000']:8.4f} {_x(usd_x):>6} "
            f"{sweeper:11.2f}"
        )
    rows.append(
        f"target: a limit costs <= {TARGET_EXTRA_OPS} more Firestore operations per task "
        "(reads + writes + deletes; queries are billed as the reads they return, at least 1)"
    )
    return rows


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _plus(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def to_json(cases: list[Case]) -> dict[str, Any]:
    return {
        case.name: {
            "seconds": [r.seconds for r in case.runs],
            "status": [r.status for r in case.runs],
            "median_seconds": statistics.median([r.seconds for r in case.runs])
            if case.runs
            else None,
            "per_task": per_task(run) if (run := case.median()) else None,
            "sweeper_per_task": per_task(run, ("sweeper",)) if run else None,
        }
        for case in cases
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=1000, help="mapped items (smaller: quicker)")
    parser.add_argument(
        "--limits", type=lambda s: [int(n) for n in s.split(",") if n], default=[10, 100]
    )
    parser.add_argument("--runs", type=int, default=1, help="runs per limit (the median shown)")
    parser.add_argument("--timeout", type=float, default=None, help="s per run")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args()
    os.environ.update(ENV)
    counts_dir = Path(tempfile.mkdtemp(prefix="kumoflow-bench-counts-"))
    _counts.enable(counts_dir)
    timeout = args.timeout or 120 + 0.5 * args.width
    started = time.perf_counter()
    try:
        cases = measure(args.width, args.limits, args.runs, timeout)
    finally:
        shutil.rmtree(counts_dir, ignore_errors=True)
    log(f"done in {time.perf_counter() - started:.0f} s")
    if args.json:
        print(json.dumps(to_json(cases), indent=2, default=str))
    else:
        print("\n".join(table(cases, args.width)))


if __name__ == "__main__":
    main()
