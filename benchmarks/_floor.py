"""The emulator floor at a width: the primitives a map task cannot avoid, with nothing of kumoflow.

Per item, as a task's request and completion alternate: publish to topic A (all N at once, as a
fan-out dispatches) -> push to a threaded endpoint that creates one Firestore document, uploads
one GCS object and publishes to topic B -> push that updates the document. That is 2 publishes,
2 pushes, 2 Firestore writes and 1 class A GCS op per task, measured with the clients directly.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchmarks._counts import Counts, harness_now

BUCKET = "kumoflow-bench-floor"


@dataclass
class Floor:
    width: int
    seconds: float
    finished: bool
    counts: Counts

    @property
    def per_task(self) -> float:
        return self.seconds / self.width


def measure(project: str, width: int, timeout: float) -> Floor:
    from google.api_core import exceptions as gexc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore, pubsub_v1, storage  # type: ignore[attr-defined]

    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=100, max_latency=0.0)
    )
    subscriber = pubsub_v1.SubscriberClient()
    db = firestore.Client(project=project)
    gcs = storage.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    with contextlib.suppress(gexc.Conflict):
        gcs.create_bucket(BUCKET)
    bucket = gcs.bucket(BUCKET)
    tag = uuid.uuid4().hex[:8]
    topics = [publisher.topic_path(project, f"bench-floor-{tag}-{i}") for i in range(2)]
    subs = [subscriber.subscription_path(project, f"bench-floor-{tag}-{i}") for i in range(2)]
    docs = db.collection("bench_floor")
    done = threading.Event()
    lock = threading.Lock()
    finished = [0]

    def hop(path: str, item: bytes) -> None:
        ref = docs.document(f"{tag}-{item.decode()}")
        if path.endswith("/0"):
            ref.create({"item": int(item)})
            blob = bucket.blob(f"{tag}/{item.decode()}.json")
            blob.upload_from_string(
                b'{"v": 1}', content_type="application/json", if_generation_match=0
            )
            publisher.publish(topics[1], item).result()
            return
        ref.update({"done": True})
        with lock:
            finished[0] += 1
            if finished[0] == width:
                done.set()

    server = _serve(hop)
    _wire(publisher, subscriber, topics, subs, server.server_port)
    before = harness_now()
    try:
        start = time.perf_counter()
        futures = [publisher.publish(topics[0], str(i).encode()) for i in range(width)]
        for future in futures:
            future.result()
        ok = done.wait(timeout)
        seconds = time.perf_counter() - start
    finally:
        for topic, sub in zip(topics, subs, strict=True):
            with contextlib.suppress(gexc.GoogleAPICallError):
                subscriber.delete_subscription(subscription=sub)
                publisher.delete_topic(topic=topic)
        subscriber.close()
        server.shutdown()
        server.server_close()
    after = harness_now()
    counts = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    return Floor(width, seconds, ok, counts)


def _serve(hop: Any) -> ThreadingHTTPServer:
    """A threaded push endpoint calling hop(path, data); an error answers 500 (redelivered)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                hop(self.path, base64.b64decode(body["message"]["data"]))
                self.send_response(204)
            except Exception:  # a redelivery will retry it, as a function's 500 would
                self.send_response(500)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _wire(publisher: Any, subscriber: Any, topics: list[str], subs: list[str], port: int) -> None:
    for index, (topic, sub) in enumerate(zip(topics, subs, strict=True)):
        publisher.create_topic(name=topic)
        subscriber.create_subscription(
            request={
                "name": sub,
                "topic": topic,
                "push_config": {"push_endpoint": f"http://127.0.0.1:{port}/{index}"},
                "ack_deadline_seconds": 60,
            }
        )
