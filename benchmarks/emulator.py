"""Per-task time of a 50-task chain on the emulator stack, beside the floor of the primitives
it cannot avoid, measured in the same run; and the peak memory of every process of the stack.

Floor per task = 2 x publish->push p50, measured as a relay between two topics whose handler
publishes the next message at once (as task.requested / task.succeeded alternate) + one Firestore
read-update transaction p50 + one GCS write and read p50. Prints; asserts nothing.

    python -m benchmarks.emulator [--runs 3] [--samples 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from orchestrator.testing import stack_env

BASE = int(os.environ.get("KUMOFLOW_BENCH_PORT_BASE", "58680"))
ENV = stack_env(BASE, f"/tmp/kumoflow-bench-{BASE}")


def p50(values: list[float]) -> float:
    return statistics.median(values)


def push_latency(project: str, samples: int) -> list[float]:
    """Per hop of a relay between two topics: each push's handler publishes the next message to
    the other topic at once, as a chain of tasks alternates task.requested and task.succeeded."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.0)
    )
    subscriber = pubsub_v1.SubscriberClient()
    names = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    topics = [publisher.topic_path(project, n) for n in names]
    subs = [subscriber.subscription_path(project, n) for n in names]
    hops: list[float] = []
    done = threading.Event()
    last = [0.0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            now = time.perf_counter()
            hops.append(now - last[0])
            if len(hops) < samples + 3:
                last[0] = now
                other = topics[1] if self.path.endswith("/0") else topics[0]
                publisher.publish(other, b"x").result()
            else:
                done.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for index, (topic, sub) in enumerate(zip(topics, subs, strict=True)):
        publisher.create_topic(name=topic)
        subscriber.create_subscription(
            request={
                "name": sub,
                "topic": topic,
                "push_config": {"push_endpoint": f"http://127.0.0.1:{server.server_port}/{index}"},
            }
        )
    try:
        last[0] = time.perf_counter()
        publisher.publish(topics[0], b"x").result()
        done.wait(120)
    finally:
        for topic, sub in zip(topics, subs, strict=True):
            subscriber.delete_subscription(subscription=sub)
            publisher.delete_topic(topic=topic)
        subscriber.close()
        server.shutdown()
    return hops[3:]


def firestore_txn(project: str, samples: int) -> list[float]:
    from google.cloud import firestore

    client = firestore.Client(project=project)
    ref = client.collection("bench").document(uuid.uuid4().hex)
    ref.set({"n": 0})
    out = []

    @firestore.transactional
    def bump(txn: Any) -> None:
        snap = ref.get(transaction=txn)
        txn.update(ref, {"n": snap.get("n") + 1})

    for _ in range(samples):
        start = time.perf_counter()
        bump(client.transaction())
        out.append(time.perf_counter() - start)
    return out


def gcs_write_read(samples: int) -> list[float]:
    from orchestrator.adapters import GcsBlobStore

    blobs = GcsBlobStore.from_env()
    out = []
    for i in range(samples):
        uri = f"gs://kumoflow-results/bench/{uuid.uuid4().hex}/{i}.json"
        start = time.perf_counter()
        blobs.put(uri, b'{"v": 1}', "application/json")
        blobs.get(uri)
        out.append(time.perf_counter() - start)
    return out


def chain_per_task(backend: Any) -> float:
    from tests.flows.basic import chain_50

    start = time.perf_counter()
    result = backend.run(chain_50, {"start": 0}, timeout=300)
    assert result.value == 50
    return (time.perf_counter() - start) / 50


def peak_rss(state_dir: Path) -> dict[str, int]:
    """VmHWM summed over each recorded process group (gunicorn master + worker, one JVM)."""
    import json

    groups: dict[int, str] = {}
    for record in state_dir.glob("*.json"):
        data = json.loads(record.read_text())
        groups[int(data["pgid"])] = str(data["name"])
    peaks: dict[str, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            pgid = os.getpgid(int(pid))
            if pgid in groups:
                status = Path(f"/proc/{pid}/status").read_text()
                hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
                peaks[groups[pgid]] = peaks.get(groups[pgid], 0) + int(hwm.split()[1]) * 1024
        except (OSError, StopIteration):
            continue
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    os.environ.update(ENV)
    from orchestrator.local import DevStack, down, up

    stack = DevStack.from_env()
    t0 = time.perf_counter()
    up(stack)
    print(f"stack up in {time.perf_counter() - t0:.1f} s (ports from {BASE})")
    os.environ.update(stack.env())
    try:
        from orchestrator.testing import StackBackend
        from tests.flows.basic import chain_50

        project = stack.config.project
        backend = StackBackend()
        backend.run(chain_50, {"start": 0}, timeout=300)  # warm every function once
        # The emulator pushes in bursts, so latency drifts: measure the floor and the chain in
        # alternation and compare each chain with the floor measured right beside it.
        ratios, ours, floors = [], [], []
        txn = firestore_txn(project, args.samples)
        gcs = gcs_write_read(args.samples)
        pushes: list[float] = []
        for _ in range(args.runs):
            push = push_latency(project, args.samples)
            pushes += push
            floor = 2 * p50(push) + p50(txn) + p50(gcs)
            per_task = chain_per_task(backend)
            floors.append(floor)
            ours.append(per_task)
            ratios.append(per_task / floor)
        print(
            f"publish->push p50 {p50(pushes) * 1000:.1f} ms (p90 "
            f"{statistics.quantiles(pushes, n=10)[-1] * 1000:.1f}); Firestore transaction p50 "
            f"{p50(txn) * 1000:.1f} ms; GCS write+read p50 {p50(gcs) * 1000:.1f} ms"
        )
        print(
            f"floor per task (median of {args.runs}) {p50(floors) * 1000:.1f} ms; kumoflow per "
            f"task, 50-task chain {p50(ours) * 1000:.1f} ms; ratio median {p50(ratios):.2f}x "
            f"(range {min(ratios):.2f}-{max(ratios):.2f}; aim <= 1.3x)"
        )
        for name, rss in sorted(peak_rss(stack.config.state_dir).items()):
            print(f"peak RSS {name:<14} {rss / 2**20:7.1f} MiB")
    finally:
        down(stack)


if __name__ == "__main__":
    main()
