"""How late timers fire on the local stack: 200 timers due 1-60 s out, fired by their own push
(the Cloud Tasks stand-in, the tick still running as the rescue) and, as the baseline in the
same run, 200 more fired by the sweeper's tick alone (never armed; every 0.5 s on the stack,
every minute in the cloud). Lateness is fired - due, where "fired" is when the entry is gone
from the store (the sweeper deletes it once fired), read every 10 ms around its due time.
Prints p50/p99 and their ratio; asserts nothing.

    python -m benchmarks.timers [--timers 200] [--spread 60] [--per-run 5]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from orchestrator.adapters import CloudTasksQueue, SystemClock
from orchestrator.contracts import OutboxEntry, OutboxKind
from orchestrator.ports import Commit, StateStore, TimerStore
from orchestrator.runtime import ArmedState
from orchestrator.testing import StackBackend, stack_env
from tests.flows.basic import wide_map

BASE = int(os.environ.get("KUMOFLOW_BENCH_TIMERS_PORT_BASE", "22780"))


POLL_S = 0.01  # how often a timer's entry is read around its due time


def _fired_at(store: TimerStore, entry: OutboxEntry, give_up: float) -> float | None:
    """When `entry` left the store (the sweeper deletes a fired timer), polled from just before
    its due time; None when it is still there at `give_up`."""
    time.sleep(max(0.0, entry.due_at.timestamp() - 0.05 - time.time()))
    while time.time() < give_up:
        if store.entry(entry.run_id, entry.id) is None:
            return time.time()
        time.sleep(POLL_S)
    return None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _arm(store: StateStore, runs: list[str], n: int, spread: float, seed: int) -> list[OutboxEntry]:
    """`n` wake timers spread over `runs` (a run holds a few timers, as real runs do: firing a
    wake reads its whole run), each due 1..`spread` s after its own commit."""
    rng = random.Random(seed)
    delays = [rng.uniform(1.0, spread) for _ in range(n)]

    def one(i: int) -> OutboxEntry:
        run_id = runs[i % len(runs)]
        due = SystemClock().now() + timedelta(seconds=delays[i])
        entry = OutboxEntry(
            id=f"wake-bench-{i}", run_id=run_id, kind=OutboxKind.WAKE, due_at=due, timer=True
        )
        store.commit(Commit(run_id=run_id, outbox_add=[entry]))
        return entry

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(n)))


def _lateness(fired: dict[str, float | None], entries: list[OutboxEntry]) -> list[float]:
    """fired - due of each timer that fired, in seconds."""
    return [
        at - e.due_at.timestamp()
        for e in entries
        if (at := fired.get(f"{e.run_id}/{e.id}")) is not None
    ]


def _report(label: str, late: list[float], of: int) -> None:
    if not late:
        print(f"{label}: none of {of} fired")
        return
    ms = [x * 1000 for x in late]
    print(
        f"{label}: {len(ms)}/{of} fired; fired - due: p50 {_percentile(ms, 0.5):.0f} ms, "
        f"p99 {_percentile(ms, 0.99):.0f} ms, min {min(ms):.0f} ms, max {max(ms):.0f} ms"
    )


def measure(timers: int, spread: float, per_run: int) -> None:
    from orchestrator.local import DevStack

    stack = DevStack.from_env()
    backend = StackBackend()
    count = max(1, timers // per_run)
    started = [backend.start(wide_map, {"items": [1]}) for _ in range(2 * count)]
    runs = [backend.wait(r).run.run_id for r in started]
    pushed_runs, ticked_runs = runs[:count], runs[count:]
    env = stack.timer_env()
    queue = CloudTasksQueue(env["KUMOFLOW_TIMER_QUEUE"], env["KUMOFLOW_TIMER_URL"])
    armed = ArmedState(backend.rt.state, queue, SystemClock())
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        pushed_f = pool.submit(_arm, armed, pushed_runs, timers, spread, 1)
        ticked_f = pool.submit(_arm, backend.rt.state, ticked_runs, timers, spread, 2)
        pushed, ticked = pushed_f.result(), ticked_f.result()
    print(
        f"committed {2 * timers} timers over {2 * count} runs in {time.perf_counter() - t0:.1f} s"
        f" ({timers} armed as pushes, {timers} left to the tick)"
    )
    give_up = max(e.due_at for e in pushed + ticked).timestamp() + 30
    everything = pushed + ticked
    with ThreadPoolExecutor(max_workers=64) as pool:
        found = pool.map(lambda e: _fired_at(backend.rt.timers, e, give_up), everything)
        fired = {f"{e.run_id}/{e.id}": at for e, at in zip(everything, found, strict=True)}
    own, tick = _lateness(fired, pushed), _lateness(fired, ticked)
    _report("own push (Cloud Tasks stand-in), tick as rescue", own, timers)
    _report("sweeper tick alone (every 0.5 s on the stack)", tick, timers)
    if own and tick:
        ratio = _percentile(tick, 0.99) / max(_percentile(own, 0.99), 1e-6)
        print(f"p99 ratio, tick alone / own push: {ratio:.1f}x")
    print("in the cloud the tick is every 60 s: without its push a timer waits up to 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timers", type=int, default=200)
    parser.add_argument("--spread", type=float, default=60.0)
    parser.add_argument("--per-run", type=int, default=5, help="timers per run")
    args = parser.parse_args()
    if "KUMOFLOW_TEST_PORT_BASE" not in os.environ:
        os.environ.update(stack_env(BASE, f"/tmp/kumoflow-bench-timers-{BASE}"))
    else:
        from orchestrator.testing import TEST_STACK_ENV

        os.environ.update(TEST_STACK_ENV)
    from orchestrator.local import DevStack, down, up

    stack = DevStack.from_env()
    up(stack)
    try:
        measure(args.timers, args.spread, args.per_run)
    finally:
        down(stack)


if __name__ == "__main__":
    main()
