"""Per-task time of a 50-task chain on the emulator stack, beside the floor of the primitives
it cannot avoid, measured in the same run; and the peak memory of every process of the stack.

Floor per task = 2 x publish->push p50 (task.requested, task.succeeded) + one Firestore
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

BASE = int(os.environ.get("KUMOFLOW_BENCH_PORT_BASE", "58680"))
ENV = {
    "KUMOFLOW_STATE_DIR": f"/tmp/kumoflow-bench-{BASE}",
    "KUMOFLOW_PUBSUB_PORT": str(BASE + 1),
    "KUMOFLOW_FIRESTORE_PORT": str(BASE + 2),
    "KUMOFLOW_FIRESTORE_WS_PORT": str(BASE + 3),
    "KUMOFLOW_GCS_PORT": str(BASE + 4),
    "KUMOFLOW_FUNCTIONS_PORT": str(BASE + 10),
}


def p50(values: list[float]) -> float:
    return statistics.median(values)


def push_latency(project: str, samples: int) -> list[float]:
    """Publish, then time until the emulator pushes it to a local HTTP endpoint."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    arrived: dict[str, float] = {}
    event = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            arrived[str(len(arrived))] = time.perf_counter()
            event.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.0)
    )
    subscriber = pubsub_v1.SubscriberClient()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    topic = publisher.topic_path(project, name)
    sub = subscriber.subscription_path(project, name)
    publisher.create_topic(name=topic)
    subscriber.create_subscription(
        request={
            "name": sub,
            "topic": topic,
            "push_config": {"push_endpoint": f"http://127.0.0.1:{server.server_port}/"},
        }
    )
    out = []
    try:
        for _ in range(samples + 3):
            event.clear()
            start = time.perf_counter()
            publisher.publish(topic, b"x").result()
            event.wait(10)
            out.append(arrived[str(len(arrived) - 1)] - start)
    finally:
        subscriber.delete_subscription(subscription=sub)
        publisher.delete_topic(topic=topic)
        subscriber.close()
        server.shutdown()
    return out[3:]


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
    from orchestrator._gcs import GcsBlobStore

    blobs = GcsBlobStore.from_env()
    out = []
    for i in range(samples):
        uri = f"gs://kumoflow-results/bench/{uuid.uuid4().hex}/{i}.json"
        start = time.perf_counter()
        blobs.put(uri, b'{"v": 1}', "application/json")
        blobs.get(uri)
        out.append(time.perf_counter() - start)
    return out


def chain_per_task(runs: int) -> list[float]:
    from tests.backends import EmulatorBackend
    from tests.flows.basic import chain_50

    backend = EmulatorBackend()
    backend.run(chain_50, {"start": 0}, timeout=300)  # warm every function once
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        result = backend.run(chain_50, {"start": 0}, timeout=300)
        out.append((time.perf_counter() - start) / 50)
        assert result.value == 50
    return out


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
    from orchestrator._devstack import DevStack, down, up

    stack = DevStack.from_env()
    t0 = time.perf_counter()
    up(stack)
    print(f"stack up in {time.perf_counter() - t0:.1f} s (ports from {BASE})")
    os.environ.update(stack.env())
    try:
        project = stack.config.project
        push = push_latency(project, args.samples)
        txn = firestore_txn(project, args.samples)
        gcs = gcs_write_read(args.samples)
        floor = 2 * p50(push) + p50(txn) + p50(gcs)
        ours = p50(chain_per_task(args.runs))
        print(
            f"publish->push p50 {p50(push) * 1000:.1f} ms (p90 "
            f"{statistics.quantiles(push, n=10)[-1] * 1000:.1f}); Firestore transaction p50 "
            f"{p50(txn) * 1000:.1f} ms; GCS write+read p50 {p50(gcs) * 1000:.1f} ms"
        )
        print(
            f"floor per task {floor * 1000:.1f} ms; kumoflow per task (50-task chain, median "
            f"of {args.runs}) {ours * 1000:.1f} ms; ratio {ours / floor:.2f}x (aim <= 1.3x)"
        )
        for name, rss in sorted(peak_rss(stack.config.state_dir).items()):
            print(f"peak RSS {name:<14} {rss / 2**20:7.1f} MiB")
    finally:
        down(stack)


if __name__ == "__main__":
    main()
