"""Watching a run on the stack without loading it: the run-finished event on Pub/Sub, and the
resident memory of every stack process sampled while it runs."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any


class FinishListener:
    """Streaming pull on the run-finished topic (a fresh subscription: the emulator loses
    messages on a reused name), so waiting costs no Firestore reads at any width."""

    def __init__(self, project: str, topic: str) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        self._subscriber = pubsub_v1.SubscriberClient()
        self._sub = self._subscriber.subscription_path(
            project, f"bench-finish-{uuid.uuid4().hex[:8]}"
        )
        self._subscriber.create_subscription(
            request={"name": self._sub, "topic": f"projects/{project}/topics/{topic}"}
        )
        self._seen: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._future = self._subscriber.subscribe(self._sub, self._on_message)

    def _on_message(self, message: Any) -> None:
        at = time.perf_counter()
        message.ack()
        text = message.data.decode("utf-8", "replace") + json.dumps(dict(message.attributes))
        with self._cond:
            self._seen.append((at, text))
            self._cond.notify_all()

    def finished_at(self, run_id: str, wait: float) -> float | None:
        """When the event naming `run_id` arrived (perf_counter), waiting up to `wait` s."""
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                for at, text in self._seen:
                    if run_id in text:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        self._future.cancel()
        try:
            self._subscriber.delete_subscription(subscription=self._sub)
        finally:
            self._subscriber.close()


def _groups(state_dir: Path) -> dict[int, str]:
    groups: dict[int, str] = {}
    for record in state_dir.glob("*.json"):
        try:
            data = json.loads(record.read_text())
            groups[int(data["pgid"])] = str(data["name"])
        except (OSError, ValueError, KeyError):
            continue
    return groups


def rss(state_dir: Path, field: str = "VmRSS") -> dict[str, int]:
    """Bytes per stack process (summed over its group: gunicorn master + worker, one JVM)."""
    groups = _groups(state_dir)
    out: dict[str, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pgid = int(stat[stat.rindex(")") + 2 :].split()[2])
            if pgid not in groups:
                continue
            status = Path(f"/proc/{pid}/status").read_text()
            line = next(x for x in status.splitlines() if x.startswith(field + ":"))
        except (OSError, ValueError, StopIteration):
            continue
        name = groups[pgid]
        out[name] = out.get(name, 0) + int(line.split()[1]) * 1024
    return out


class RssSampler:
    """RSS of each stack process at start, its maximum sampled every `period` s, and at stop."""

    def __init__(self, state_dir: Path, period: float = 1.0) -> None:
        self.state_dir = state_dir
        self.start = rss(state_dir)
        self.peak = dict(self.start)
        self.end: dict[str, int] = {}
        self._stop = threading.Event()
        self._period = period
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self._sample()

    def _sample(self) -> dict[str, int]:
        now = rss(self.state_dir)
        for name, value in now.items():
            self.peak[name] = max(self.peak.get(name, 0), value)
        return now

    def total(self) -> int:
        return sum(rss(self.state_dir).values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.end = self._sample()

    def rows(self) -> dict[str, dict[str, int]]:
        names = sorted(set(self.start) | set(self.peak) | set(self.end))
        return {
            n: {
                "start": self.start.get(n, 0),
                "peak": self.peak.get(n, 0),
                "end": self.end.get(n, 0),
            }
            for n in names
        }
