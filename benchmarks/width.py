"""A map of N trivial tasks and a fan-in that sums them, on the local stack, at each width:
wall time start -> terminal, time per task, Firestore / Pub/Sub / GCS operations and function
invocations counted per task, $ per 1,000 tasks at list prices, and each stack process's
memory, beside baselines measured in the same run: the emulator floor (the same messages and
writes with the clients alone, benchmarks._floor) and Prefect 3's in-process `.map`
(benchmarks._prefect). Prints tables; asserts nothing.

    python -m benchmarks.width [--widths 100,1000,10000] [--runs N] [--skip-prefect]
        [--prefect-widths 100,1000] [--timeout 100=300,1000=900] [--json]

Operations are counted by benchmarks/_site (a sitecustomize on the stack processes' PYTHONPATH
that patches Google's client libraries; kumoflow is not touched). The stack runs on its own
ports from KUMOFLOW_BENCH_WIDTH_PORT_BASE (default 21680) and is stopped at the end. A task is
one of the N mapped tasks or the fan-in: tasks = N + 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import _counts, _prefect
from benchmarks._counts import ByRole
from orchestrator.testing import stack_env

BASE = int(os.environ.get("KUMOFLOW_BENCH_WIDTH_PORT_BASE", "21680"))
ENV = stack_env(BASE, f"/tmp/kumoflow-bench-width-{BASE}")
PROGRESS_S = 5.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class KumoRun:
    width: int
    seconds: float
    status: str  # SUCCEEDED, FAILED, ..., "timeout" or "error: ..."
    value_ok: bool
    ops: ByRole = field(default_factory=dict)
    rss: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return self.width + 1

    @property
    def per_task(self) -> float:
        return self.seconds / self.tasks

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED" and self.value_ok


def timeouts(spec: str | None) -> Callable[[int], float]:
    """`600` for every width, or `100=300,1000=900` (others: the default); default 120 s +
    0.3 s per task, 50 min at 10,000 wide."""
    fixed: float | None = None
    per: dict[int, float] = {}
    for part in filter(None, (spec or "").split(",")):
        if "=" in part:
            width, _, seconds = part.partition("=")
            per[int(width)] = float(seconds)
        else:
            fixed = float(part)
    return lambda w: per.get(w, fixed if fixed is not None else 120 + 0.3 * w)


def kumo_run(
    backend: Any,
    listener: Any,
    state_dir: Path,
    counts_dir: Path,
    width: int,
    timeout: float,
    flow: Any = None,
) -> KumoRun:
    """One run of `flow` (default: benchmarks._width_flow.width_map, or any flow of the same
    shape: `items` in, their sum out) on the stack, timed and counted."""
    from benchmarks._watch import RssSampler
    from benchmarks._width_flow import width_map
    from orchestrator.local import load_run

    before = _counts.settled(counts_dir)
    sampler = RssSampler(state_dir)
    start = time.perf_counter()
    try:
        run_id = backend.start(flow or width_map, {"items": list(range(width))})
    except Exception as e:  # the core is mid-rewrite: say what broke and go on
        sampler.stop()
        return KumoRun(width, 0.0, f"error: {type(e).__name__}: {e}", False)
    deadline = start + timeout
    ended: float | None = None
    next_check = start + 30
    while ended is None and time.perf_counter() < deadline:
        ended = listener.finished_at(run_id, min(PROGRESS_S, deadline - time.perf_counter()))
        now = _counts.totals(counts_dir)
        elapsed = time.perf_counter() - start
        log(
            f"  [{width} wide] {elapsed:5.0f} s: task_worker "
            f"{_counts.calls(now, 'task_worker') - _counts.calls(before, 'task_worker')}, "
            f"orchestrator "
            f"{_counts.calls(now, 'orchestrator') - _counts.calls(before, 'orchestrator')} "
            f"invocations; stack RSS {sampler.total() / 2**20:,.0f} MiB"
        )
        if ended is None and time.perf_counter() > next_check:
            next_check += 30  # no event? look once in a while (a full load: not every poll)
            try:
                if load_run(backend.rt, run_id).run.status.terminal:
                    ended = time.perf_counter()
            except Exception:
                pass
    seconds = (ended or time.perf_counter()) - start
    status, value_ok = "timeout", False
    if ended is not None:
        try:
            outcome = backend.wait(run_id, timeout=120)
            status = outcome.status.name
            value_ok = outcome.value == sum(range(width))
        except Exception as e:
            status = f"error: {type(e).__name__}: {e}"
    sampler.stop()
    ops = _counts.diff(_counts.settled(counts_dir), before)
    return KumoRun(width, seconds, status, value_ok, ops, sampler.rows())


def on_stack(
    args: argparse.Namespace, timeout_of: Callable[[int], float], counts_dir: Path
) -> tuple[dict[int, list[KumoRun]], dict[int, list[Any]], str | None]:
    """Every width's kumoflow runs and floors, alternating (the emulator drifts); the stack
    is started here and stopped before returning."""
    from benchmarks._floor import measure
    from orchestrator import emulators
    from orchestrator.local import DevStack, down, up

    stack = DevStack.from_env()
    down(stack)  # a stale stack on these ports would lack the counting env
    t0 = time.perf_counter()
    up(stack)
    log(f"stack up in {time.perf_counter() - t0:.1f} s (ports from {BASE})")
    os.environ.update(stack.env())
    runs: dict[int, list[KumoRun]] = {w: [] for w in args.widths}
    floors: dict[int, list[Any]] = {w: [] for w in args.widths}
    broken: str | None = None
    listener: Any = None
    try:
        from benchmarks._watch import FinishListener
        from orchestrator.runtime import TOPICS
        from orchestrator.testing import StackBackend

        project = stack.config.project
        listener = FinishListener(project, TOPICS.finished)
        backend = StackBackend()
        warm = kumo_run(backend, listener, stack.config.state_dir, counts_dir, 10, 120)
        log(f"warm-up (10 wide, loads every function): {warm.status} in {warm.seconds:.1f} s")
        if not warm.ok:
            broken = f"warm-up run (10 wide) did not succeed: {warm.status}"
            log(broken)
        for width in args.widths:
            for index in range(args.runs):
                log(f"width {width}, run {index + 1}/{args.runs}: emulator floor")
                floors[width].append(measure(project, width, timeout_of(width)))
                if broken:
                    continue
                emulators.clear_data(stack.config)  # each run on an empty Firestore
                log(f"width {width}, run {index + 1}/{args.runs}: kumoflow")
                done = kumo_run(
                    backend,
                    listener,
                    stack.config.state_dir,
                    counts_dir,
                    width,
                    timeout_of(width),
                )
                runs[width].append(done)
                log(f"  -> {done.status} in {done.seconds:.1f} s")
                if done.status == "timeout":
                    broken = f"{width} wide timed out; it may still be running: later runs skipped"
                    log(broken)
    finally:
        if listener is not None:
            listener.close()
        down(stack)
    return runs, floors, broken


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    widths = lambda s: [int(w) for w in s.split(",") if w]  # noqa: E731
    parser.add_argument("--widths", type=widths, default=[100, 1000, 10000])
    parser.add_argument("--runs", type=int, default=1, help="kumoflow runs per width")
    parser.add_argument("--skip-prefect", action="store_true")
    parser.add_argument("--prefect-widths", type=widths, default=None, help="default: the --widths")
    parser.add_argument("--timeout", default=None, help="s per run: 600, or 100=300,1000=900")
    parser.add_argument("--vcpu", type=float, default=1.0, help="function size for the cost")
    parser.add_argument("--memory-gib", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args()
    timeout_of = timeouts(args.timeout)
    os.environ.update(ENV)
    counts_dir = Path(tempfile.mkdtemp(prefix="kumoflow-bench-counts-"))
    _counts.enable(counts_dir)

    from benchmarks import _report

    try:
        runs, floors, broken = on_stack(args, timeout_of, counts_dir)
    except Exception as e:  # the stack did not come up: still run the baselines
        log(f"stack: {type(e).__name__}: {e}")
        runs, floors, broken = {}, {}, f"stack: {type(e).__name__}: {e}"
    prefect: dict[str, Any] = {"error": "skipped (--skip-prefect)"}
    if not args.skip_prefect:
        prefect = _prefect.baseline(args.prefect_widths or args.widths, timeout_of, log)
    shutil.rmtree(counts_dir, ignore_errors=True)
    report = _report.Report(args, runs, floors, prefect, broken)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        for width in sorted(set(args.widths) | set(prefect.get("runs", {}))):
            print("\n".join(report.width_table(width)) + "\n")
        print("\n".join(report.summary()))


if __name__ == "__main__":
    main()
