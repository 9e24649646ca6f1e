"""How late timers fire on the local stack: 200 timers due 1-60 s out, fired by their own push
(the Cloud Tasks stand-in, the tick still running as the rescue) and, as the baseline in the
same run, 200 more fired by the sweeper's tick alone (never armed; every 0.5 s on the stack,
every minute in the cloud). The timers are retry dispatches (the most common timer): "fired"
is when the attempt's request arrives on a pull subscription of the tasks topic.
Prints p50/p99 and their ratio; asserts nothing.

    python -m benchmarks.timers [--timers 200] [--spread 60] [--per-run 5]
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from orchestrator.adapters import CloudTasksQueue, SystemClock
from orchestrator.contracts import OutboxEntry, OutboxKind
from orchestrator.ports import Commit, StateStore
from orchestrator.runtime import ArmedState
from orchestrator.testing import StackBackend, stack_env
from tests.flows.basic import retrying

BASE = int(os.environ.get("KUMOFLOW_BENCH_TIMERS_PORT_BASE", "22780"))


class Arrivals:
    """When each task request arrived on a fresh pull subscription of the tasks topic: a
    fired retry timer publishes its attempt's request (the worker then finds the run ended
    and ignores it). Pull latency (~30 ms) is in both measures alike."""

    def __init__(self, project: str, topic: str) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        self.at: dict[str, float] = {}
        self._client = pubsub_v1.SubscriberClient()
        self._path = self._client.subscription_path(project, f"bench-timers-{uuid.uuid4().hex}")
        self._client.create_subscription(
            name=self._path, topic=f"projects/{project}/topics/{topic}"
        )
        self._future = self._client.subscribe(self._path, self._received)

    def _received(self, message: Any) -> None:
        self.at.setdefault(message.attributes.get("ce-id", ""), time.time())
        message.ack()

    def close(self) -> None:
        self._future.cancel()
        self._client.delete_subscription(subscription=self._path)
        self._client.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _arm(store: StateStore, runs: list[str], n: int, spread: float, seed: int) -> list[OutboxEntry]:
    """`n` retry timers spread over `runs`, each due 1..`spread` s after its own commit: a
    dispatch of an attempt of the runs' task "after" (attempts past any real one)."""
    rng = random.Random(seed)
    delays = [rng.uniform(1.0, spread) for _ in range(n)]

    def one(i: int) -> OutboxEntry:
        run_id = runs[i % len(runs)]
        due = SystemClock().now() + timedelta(seconds=delays[i])
        entry = OutboxEntry(
            id=f"dispatch-after-{100 + i}",
            run_id=run_id,
            kind=OutboxKind.DISPATCH,
            key="after",
            attempt=100 + i,
            due_at=due,
            timer=True,
        )
        store.commit(Commit(run_id=run_id, outbox_add=[entry]))
        return entry

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(n)))


def _lateness(arrived: dict[str, float], entries: list[OutboxEntry]) -> list[float]:
    """fired - due of each timer whose request arrived, in seconds."""
    return [
        at - e.due_at.timestamp()
        for e in entries
        if (at := arrived.get(f"{e.run_id}/{e.key}/{e.attempt}")) is not None
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
    params = {"counter": "/dev/null", "failures": 0, "after_counter": "/dev/null"}
    started = [backend.start(retrying, params) for _ in range(2 * count)]
    runs = [backend.wait(r).run.run_id for r in started]
    pushed_runs, ticked_runs = runs[:count], runs[count:]
    env = stack.timer_env()
    queue = CloudTasksQueue(env["KUMOFLOW_TIMER_QUEUE"], env["KUMOFLOW_TIMER_URL"])
    # The stack's processes arm what they commit; the baseline's timers must not be armed.
    store = backend.rt.state
    unarmed = store.inner if isinstance(store, ArmedState) else store
    armed = ArmedState(unarmed, queue, SystemClock())
    arrivals = Arrivals(stack.config.project, backend.rt.topics.tasks)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        pushed_f = pool.submit(_arm, armed, pushed_runs, timers, spread, 1)
        ticked_f = pool.submit(_arm, unarmed, ticked_runs, timers, spread, 2)
        pushed, ticked = pushed_f.result(), ticked_f.result()
    print(
        f"committed {2 * timers} timers over {2 * count} runs in {time.perf_counter() - t0:.1f} s"
        f" ({timers} armed as pushes, {timers} left to the tick)"
    )
    give_up = max(e.due_at for e in pushed + ticked).timestamp() + 30
    try:
        while time.time() < give_up and len(arrivals.at) < 2 * timers:
            time.sleep(0.5)
    finally:
        arrivals.close()
    own, tick = _lateness(arrivals.at, pushed), _lateness(arrivals.at, ticked)
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
