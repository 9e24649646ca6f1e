"""In-process overhead: `kumoflow run` cold start and a 1,000-task chain, beside baselines.

Prints; asserts nothing. Baselines measured in the same run: `python -c pass` for the cold start,
and 1,000 plain calls of the same task function for the chain. Medians over --repeat runs.

    python -m benchmarks.inprocess [--repeat 5]
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
            "import sys, orchestrator.cli._main, orchestrator.runtime._runner, "
            "orchestrator.runtime._advance; print(any(m.startswith(("
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
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


if __name__ == "__main__":
    main()
