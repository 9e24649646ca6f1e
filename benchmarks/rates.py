"""Rate limit accuracy: observed start rate vs the configured one, for a map under `rate=`,
beside the same map without a rate measured in the same run (the baseline: how fast the
starts come when nothing holds them back). In-process (real clock, a MemoryStore, timers fired
by the runner's sweeper), or on the local stack with `--stack` (own ports from 21780; there
the workers import tests/flows/paced.py: its rates, 10/s and 4/s).

Printed per rate: the most starts seen in any window of one period (never above the count),
the sustained rate from one period after the first start on (past the first window's burst),
and its ratio to the configured rate
(accuracy: 1.0 is exact, below is slower than permitted). Prints; asserts nothing.

    python -m benchmarks.rates [--width 100] [--rates 10/s,50/s] [--stack]
"""

from __future__ import annotations

import argparse
import os
import statistics
from datetime import datetime

from orchestrator.contracts import FlowSpec, Rate, RunStatus, TaskRun, parse_rate
from orchestrator.runtime import InProcessRunner
from tests.flows.paced import (
    RATE,
    SLOW,
    most_in_a_window,
    paced_map,
    slow_map,
    starts,
    sustained,
    unpaced_map,
)


def _spec(rate: Rate | None) -> FlowSpec:
    """tests/flows/paced.py's map with its items' rate replaced (None: no rate)."""
    spec = paced_map.spec
    nodes = tuple(
        n.model_copy(update={"options": n.options.model_copy(update={"rate": rate})})
        if n.options.rate is not None
        else n
        for n in spec.nodes
    )
    return spec.model_copy(update={"nodes": nodes, "name": f"bench-{rate or 'unrated'}"})


def _in_process(rate: Rate | None, width: int) -> list[TaskRun]:
    with InProcessRunner(functions=paced_map.functions(), max_workers=16) as runner:
        out = runner.run(_spec(rate), {"items": list(range(width))})
    assert out.run.status is RunStatus.SUCCEEDED, out.run.error
    return [t for k, t in out.tasks.items() if "[" in k]


def _on_stack(rate: Rate | None, width: int) -> list[TaskRun]:
    from orchestrator.testing import StackBackend, stack_for_tests

    flows = {None: unpaced_map, RATE: paced_map, SLOW: slow_map}
    if rate not in flows:
        raise SystemExit("on the stack the rates are tests/flows/paced.py's: --rates 10/s,4/s")
    with stack_for_tests():
        out = StackBackend().run(flows[rate], {"items": list(range(width))}, timeout=900)
    assert out.status is RunStatus.SUCCEEDED
    return [t for k, t in out.tasks.items() if "[" in k and "total" not in k]


def overall(times: list[datetime]) -> float:
    """Starts per second from the first to the last (the baseline: nothing holds them)."""
    span = (times[-1] - times[0]).total_seconds()
    return (len(times) - 1) / span if span > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--rates", default=None, help="default: 10/s,50/s; 10/s,4/s on --stack")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stack", action="store_true")
    args = parser.parse_args()
    if args.stack:
        os.environ.setdefault("KUMOFLOW_TEST_PORT_BASE", "21780")
    measure = _on_stack if args.stack else _in_process
    where = "the stack" if args.stack else "in-process"
    base = [overall(starts(measure(None, args.width))) for _ in range(args.runs)]
    print(f"{args.width} tasks {where}, median of {args.runs}")
    print(f"no rate (baseline): {statistics.median(base):.1f} starts/s")
    print(f"{'rate':>8} {'most in a window':>17} {'sustained/s':>12} {'accuracy':>9}")
    for text in (args.rates or ("10/s,4/s" if args.stack else "10/s,50/s")).split(","):
        # On the stack a rate is one of tests/flows/paced.py's, key and all.
        rate = next((r for r in (RATE, SLOW) if str(r).endswith(f":{text}")), None)
        rate = rate or parse_rate(f"bench:{text}")
        peaks, rates = [], []
        for _ in range(args.runs):
            times = starts(measure(rate, args.width))
            peaks.append(most_in_a_window(times, rate.period))
            rates.append(sustained(times, rate.period))
        configured = rate.count / rate.period.total_seconds()
        got = statistics.median(rates)
        print(
            f"{text:>8} {max(peaks):>11} of {rate.count:<4} {got:>12.2f} {got / configured:>9.3f}"
        )


if __name__ == "__main__":
    main()
