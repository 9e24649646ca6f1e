"""A Cloud Tasks stand-in (API v2, HTTP targets) for the local stack.

Google ships no Cloud Tasks emulator. This one speaks the REST surface the `google-cloud-tasks`
client uses (`transport="rest"`, `api_endpoint=CLOUD_TASKS_EMULATOR_HOST`): create and get
queues; create, get, list and delete tasks. A task's HTTP request is sent at its
`scheduleTime` (a timer thread, not a poll), with its method, headers and body; a non-2xx
answer or a connection error is tried again after the queue's backoff (`retryConfig`:
minBackoff doubling up to maxBackoff, maxAttempts), as Cloud Tasks does; a task answered 2xx
is deleted. Named tasks dedupe: a name used before (still queued or already done) is refused
with 409 ALREADY_EXISTS, as Cloud Tasks does for about an hour. No OIDC token is attached (the
stack's functions check none, as with the Pub/Sub emulator's pushes).

    python _cloudtasks.py --host 127.0.0.1 --port 8688   (as the stack starts it)

`GET /dispatches` lists what was sent (name, scheduled and sent times, answer status, url and
headers): tests and the timer benchmark read it.
"""

from __future__ import annotations

import argparse
import base64
import heapq
import re
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any

from orchestrator.emulators._rest import ApiError, JsonHandler, seconds

_QUEUES = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+)/queues$")
_QUEUE = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/queues/[^/:]+)$")
_TASKS = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/queues/[^/]+)/tasks$")
_TASK = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/queues/[^/]+/tasks/[^/:]+)$")
_DEFAULT_RETRY = {"maxAttempts": 100, "minBackoff": "0.100s", "maxBackoff": "3600s"}
KEPT_DISPATCHES = 10_000
# The REST client sends enums as numbers (`$alt=json;enum-encoding=int`): HttpMethod's values.
_METHODS = {1: "POST", 2: "GET", 3: "HEAD", 4: "PUT", 5: "DELETE", 6: "PATCH", 7: "OPTIONS"}


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _parse_time(raw: str | None) -> datetime:
    if not raw:
        return _now()
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


class Service:
    """Queues and tasks in memory; a dispatcher thread sends each task at its time."""

    def __init__(self) -> None:
        self.queues: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.names_used: set[str] = set()  # dedupe: a name is refused again once used
        self.dispatches: deque[dict[str, Any]] = deque(maxlen=KEPT_DISPATCHES)
        self._heap: list[tuple[float, int, str]] = []  # (send at, sequence, task name)
        self._seq = 0
        self._wake = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="dispatch")
        self._stopped = False
        threading.Thread(target=self._dispatcher, name="dispatcher", daemon=True).start()

    # Queues
    def create_queue(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name") or f"{parent}/queues/{uuid.uuid4().hex[:12]}"
        with self._wake:
            if name in self.queues:
                raise ApiError(409, "ALREADY_EXISTS", f"Queue {name} already exists.")
            queue = {
                "retryConfig": _DEFAULT_RETRY,
                "rateLimits": {"maxDispatchesPerSecond": 500, "maxConcurrentDispatches": 1000},
                **body,
                "name": name,
                "state": "RUNNING",
            }
            self.queues[name] = queue
            return queue

    def get_queue(self, name: str) -> dict[str, Any]:
        with self._wake:
            if name not in self.queues:
                raise ApiError(404, "NOT_FOUND", f"Queue {name} does not exist.")
            return self.queues[name]

    # Tasks
    def create_task(self, queue: str, body: dict[str, Any]) -> dict[str, Any]:
        task = dict(body.get("task") or {})
        if "httpRequest" not in task:
            raise ApiError(400, "INVALID_ARGUMENT", "this stand-in takes HTTP tasks only")
        with self._wake:
            self.get_queue(queue)
            name = task.get("name") or f"{queue}/tasks/{uuid.uuid4().hex}"
            if not name.startswith(f"{queue}/tasks/"):
                raise ApiError(400, "INVALID_ARGUMENT", f"task {name} is not of queue {queue}")
            if name in self.names_used:
                raise ApiError(409, "ALREADY_EXISTS", f"Requested entity already exists: {name}")
            at = _parse_time(task.get("scheduleTime"))
            task.update(
                name=name,
                scheduleTime=_stamp(at),
                createTime=_stamp(_now()),
                dispatchCount=0,
                responseCount=0,
                view="BASIC",
            )
            self.names_used.add(name)
            self.tasks[name] = task
            self._push(at.timestamp(), name)
            return task

    def get_task(self, name: str) -> dict[str, Any]:
        with self._wake:
            if name not in self.tasks:
                raise ApiError(404, "NOT_FOUND", f"Task {name} does not exist.")
            return self.tasks[name]

    def list_tasks(self, queue: str) -> dict[str, Any]:
        with self._wake:
            self.get_queue(queue)
            return {"tasks": [t for n, t in self.tasks.items() if n.startswith(f"{queue}/")]}

    def delete_task(self, name: str) -> dict[str, Any]:
        with self._wake:
            if self.tasks.pop(name, None) is None:
                raise ApiError(404, "NOT_FOUND", f"Task {name} does not exist.")
            return {}

    # Dispatch
    def _push(self, at: float, name: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, name))
        self._wake.notify()

    def _dispatcher(self) -> None:
        with self._wake:
            while not self._stopped:
                if not self._heap:
                    self._wake.wait()
                    continue
                at, _, name = self._heap[0]
                wait = at - time.time()
                if wait > 0:
                    self._wake.wait(wait)  # woken early by an earlier task, or on time
                    continue
                heapq.heappop(self._heap)
                if name in self.tasks:  # deleted meanwhile: nothing to send
                    self._pool.submit(self._send, name, at)

    def _send(self, name: str, scheduled: float) -> None:
        with self._wake:
            task = self.tasks.get(name)
            if task is None:
                return
            task["dispatchCount"] += 1
            attempt = task["dispatchCount"]
            http = task["httpRequest"]
            queue = self.queues.get(name.rpartition("/tasks/")[0], {})
        sent = time.time()
        status = _deliver(http, seconds(task.get("dispatchDeadline"), 600.0))
        with self._wake:
            self.dispatches.append(
                {
                    "name": name,
                    "scheduled": scheduled,
                    "sent": sent,
                    "status": status,
                    "attempt": attempt,
                    "url": http["url"],
                    "headers": http.get("headers", {}),
                }
            )
            if task is not self.tasks.get(name):
                return
            if 200 <= status < 300:
                del self.tasks[name]
                return
            retry = {**_DEFAULT_RETRY, **queue.get("retryConfig", {})}
            if attempt >= int(retry["maxAttempts"]):
                del self.tasks[name]  # given up on, as Cloud Tasks drops it
                return
            low = seconds(retry["minBackoff"], 0.1)
            backoff = min(low * 2 ** (attempt - 1), seconds(retry["maxBackoff"], 3600.0))
            task["responseCount"] += 1
            task["scheduleTime"] = _stamp(datetime.fromtimestamp(time.time() + backoff, UTC))
            self._push(time.time() + backoff, name)

    def shutdown(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _deliver(http: dict[str, Any], deadline: float) -> int:
    """Send one HTTP task; its status code (0: no answer)."""
    body = base64.b64decode(http.get("body", "")) if http.get("body") else None
    request = urllib.request.Request(
        http["url"],
        data=body,
        method=_METHODS.get(method, str(method))
        if isinstance(method := http.get("httpMethod", 1), int)
        else method,
        headers=dict(http.get("headers", {})),
    )
    try:
        with urllib.request.urlopen(request, timeout=deadline) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


def handler(service: Service) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def dispatch(self, method: str, path: str, params: dict[str, str]) -> Any:
            if method == "GET" and path == "/":
                return {"service": "kumoflow Cloud Tasks stand-in v2"}
            if method == "GET" and path == "/dispatches":
                with service._wake:
                    return {"dispatches": list(service.dispatches)}
            if (m := _QUEUES.match(path)) and method == "POST":
                return service.create_queue(m.group(1), self.body())
            if (m := _QUEUE.match(path)) and method == "GET":
                return service.get_queue(m.group(1))
            if m := _TASKS.match(path):
                if method == "POST":
                    return service.create_task(m.group(1), self.body())
                if method == "GET":
                    return service.list_tasks(m.group(1))
            if m := _TASK.match(path):
                if method == "GET":
                    return service.get_task(m.group(1))
                if method == "DELETE":
                    return service.delete_task(m.group(1))
            raise ApiError(404, "NOT_FOUND", f"{method} {path} is not part of this stand-in")

    return Handler


class CloudTasksServer(ThreadingHTTPServer):
    """The stand-in's HTTP server and its service (port 0: any free port)."""

    def __init__(self, host: str, port: int) -> None:
        self.service = Service()
        super().__init__((host, port), handler(self.service))

    def server_close(self) -> None:
        self.service.shutdown()
        super().server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8688)
    ns = parser.parse_args(argv)
    server = CloudTasksServer(ns.host, ns.port)

    def stop(*_: object) -> None:
        server.service.shutdown()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
