"""In-process overhead: `kumoflow run` cold start, a 1,000-task chain, and a run-time map of
1,000 with a fan-in, beside baselines.

Prints; asserts nothing. Baselines measured in the same run: `python -c pass` for the cold start,
1,000 plain calls of the same task function for the chain, and Prefect 3's in-process `.map` over
a task's result of the same width (in the harness's own venv; `--skip-prefect` leaves it out).
Medians over --repeat runs.

    python -m benchmarks.inprocess [--repeat 5] [--width 1000] [--skip-prefect]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE_TASK = "examples/diamond.py:diamond"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def cold_start(repeat: int) -> tuple[float, float, bool]:
    python = [timed([sys.executable, "-c", "pass"]) for _ in range(repeat)]
    kumo = [
        timed([sys.executable, "-m", "orchestrator", "run", "tests.flows.basic:chain_50", "--json"])
        for _ in range(repeat)
    ]
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, orchestrator.cli, orchestrator.runtime; print(any(m.startswith(("
            "'google.cloud.', 'google.api_core', 'grpc')) for m in sys.modules))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return statistics.median(python), statistics.median(kumo), probe.stdout.strip() == "True"


def chain(repeat: int) -> tuple[float, float]:
    sys.path.insert(0, str(ROOT))
    from tests.flows.basic import chain_1000, inc

    raw, ours = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        value = 0
        for _ in range(1000):
            value = inc.fn(value)
        raw.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert chain_1000(start=0) == 1000
        ours.append(time.perf_counter() - start)
    return statistics.median(raw), statistics.median(ours)


def run_time_map(repeat: int, width: int) -> float:
    """Median seconds of the in-process run-time map: a task makes the list, `.map` over it."""
    sys.path.insert(0, str(ROOT))
    from benchmarks._width_flow import run_time_map as flow

    took = []
    for _ in range(repeat):
        start = time.perf_counter()
        assert flow(width=width) == sum(range(width))
        took.append(time.perf_counter() - start)
    return statistics.median(took)


def prefect_run_time_map(repeat: int, width: int) -> tuple[float | None, str]:
    """Median seconds of Prefect's run of the same shape (first run's server start apart)."""
    from benchmarks import _prefect

    python, version = _prefect.ensure_venv()
    if python is None:
        return None, version
    took = []
    for _ in range(repeat):
        got = _prefect.run(python, width, timeout=900, run_time=True)
        if isinstance(got, str):
            return None, got
        took.append(float(got["seconds"]))
    return statistics.median(took), f"Prefect {version}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--skip-prefect", action="store_true")
    args = parser.parse_args()
    python, kumo, google_loaded = cold_start(args.repeat)
    print(
        f"cold start (median of {args.repeat}): `python -c pass` {python * 1000:.0f} ms; "
        f"`kumoflow run` of a 50-task chain {kumo * 1000:.0f} ms "
        f"(ratio {kumo / python:.1f}x; aim: well under 1 s)"
    )
    print(f"google-cloud client libraries imported on the in-process path: {google_loaded}")
    raw, ours = chain(args.repeat)
    per_task = (ours - raw) / 1000
    print(
        f"1,000-task chain (median of {args.repeat}): plain calls {raw * 1000:.2f} ms; "
        f"kumoflow in-process {ours * 1000:.0f} ms; overhead {per_task * 1000:.3f} ms per task "
        f"(aim: < 0.5 ms)"
    )
    ours_map = run_time_map(args.repeat, args.width)
    line = (
        f"run-time map of {args.width:,} + fan-in (median of {args.repeat}): kumoflow in-process "
        f"{ours_map * 1000:.0f} ms ({ours_map / (args.width + 2) * 1000:.3f} ms per task)"
    )
    if args.skip_prefect:
        print(f"{line}; Prefect skipped")
        return
    theirs, who = prefect_run_time_map(args.repeat, args.width)
    if theirs is None:
        print(f"{line}; Prefect not measured: {who}")
        return
    print(f"{line}; {who} {theirs * 1000:.0f} ms; kumoflow / Prefect {ours_map / theirs:.2f}x")


if __name__ == "__main__":
    main()
