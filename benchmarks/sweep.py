"""How much one sweeper tick handles: 10,000 due retry timers spread over 100 runs, fired by
`tick` with its production budget (45 s), on the in-memory store and on the Firestore emulator
(Pub/Sub replaced by an in-memory bus, so the store is what is measured). Prints; asserts
nothing.

    python -m benchmarks.sweep [--due 10000] [--runs 100] [--memory-only]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta
from typing import Any

from orchestrator.adapters import MemoryBus, MemoryStore, SystemClock
from orchestrator.contracts import OutboxEntry, RunRequested
from orchestrator.ports import Commit
from orchestrator.runtime import TICK_BUDGET_S, memory_runtime, start_run, tick
from orchestrator.testing import stack_env
from tests.flows.basic import wide_map

BASE = int(os.environ.get("KUMOFLOW_BENCH_SWEEP_PORT_BASE", "22680"))


def _seed(store: Any, rt: Any, runs: int, per_run: int) -> None:
    """Each run's mapped tasks are waiting on a retry timer that is already due."""
    now = SystemClock().now()
    store.put_flow(wide_map.spec)
    for r in range(runs):
        run_id = f"sweep-{r}-{int(time.time())}"
        start_run(rt, RunRequested(flow="wide-map", params={"items": [1] * per_run}), run_id=run_id)
        entries = [
            OutboxEntry(
                id=f"dispatch-scale[{i}]-2",
                run_id=run_id,
                kind="dispatch",
                key=f"scale[{i}]",
                attempt=2,
                due_at=now - timedelta(seconds=1),
                timer=True,
            )
            for i in range(per_run)
        ]
        store.commit(Commit(run_id=run_id, outbox_add=entries))


def measure(store: Any, label: str, due: int, runs: int) -> None:
    bus = MemoryBus()
    rt = memory_runtime(store=store, bus=bus)
    t0 = time.perf_counter()
    _seed(store, rt, runs, due // runs)
    print(f"{label}: seeded {due} due timers over {runs} runs in {time.perf_counter() - t0:.1f} s")
    ticks, total = 0, 0
    t0 = time.perf_counter()
    while True:
        started = time.perf_counter()
        handled = tick(rt)
        ticks += 1
        total += handled
        took = time.perf_counter() - started
        print(f"  tick {ticks}: {handled} items in {took:.1f} s ({handled / took:.0f} items/s)")
        if handled == 0 or ticks >= 20:
            break
    took = time.perf_counter() - t0
    print(f"  all {total} items in {took:.1f} s, {ticks} tick(s) of <= {TICK_BUDGET_S:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--memory-only", action="store_true")
    args = parser.parse_args()
    measure(MemoryStore(), "memory", args.due, args.runs)
    if args.memory_only:
        return
    os.environ.update(stack_env(BASE, f"/tmp/kumoflow-bench-sweep-{BASE}"))
    from orchestrator import emulators
    from orchestrator.adapters import FirestoreStore
    from orchestrator.local import DevStack

    stack = DevStack.from_env()
    emulators.up(stack.config)  # the emulators only: no functions, no sweeper of their own
    os.environ.update(stack.env())
    try:
        measure(
            FirestoreStore.from_env(stack.config.project), "firestore emulator", args.due, args.runs
        )
    finally:
        emulators.down(stack.config)


if __name__ == "__main__":
    main()
