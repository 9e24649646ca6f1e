"""Cloud Tasks adapter for TimerQueue: one HTTP task per timer, pushed at its due time.

Each task is an HTTP POST to the sweeper function carrying a binary-mode CloudEvent (`ce-*`
headers, a TimerDue body), signed by Cloud Tasks with an OIDC token of the invoker service
account for the function's URL: the same token check as a Pub/Sub push. The task's name is a
hash of (run, entry, due time), so arming the same timer twice makes one task (ALREADY_EXISTS).

Configuration (set by Terraform in the cloud, by `kumoflow dev up` on the stack):
- `KUMOFLOW_TIMER_QUEUE`: `projects/P/locations/L/queues/Q`; unset, no timer is armed (the
  sweeper's tick fires them all).
- `KUMOFLOW_TIMER_URL`: the sweeper function's URL (and the token's audience).
- `KUMOFLOW_TIMER_INVOKER`: the service account whose OIDC token the push carries (none on the
  stack, whose functions check no token).
- `CLOUD_TASKS_EMULATOR_HOST`: `http://HOST:PORT` of the stack's stand-in (REST, no credentials).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from datetime import timedelta

from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.cloud import tasks_v2

from orchestrator.contracts import TIMER_DUE, OutboxEntry, TimerDue
from orchestrator.errors import TransientError

QUEUE_ENV = "KUMOFLOW_TIMER_QUEUE"
URL_ENV = "KUMOFLOW_TIMER_URL"
INVOKER_ENV = "KUMOFLOW_TIMER_INVOKER"
EMULATOR_ENV = "CLOUD_TASKS_EMULATOR_HOST"
DISPATCH_DEADLINE = timedelta(seconds=60)  # the sweeper function's own timeout


def task_id(entry: OutboxEntry) -> str:
    """One task per (run, entry, due time); hashed, as Cloud Tasks advises for named tasks
    (sequential names make hot spots in its index)."""
    identity = f"{entry.run_id}|{entry.id}|{entry.due_at.isoformat()}"
    return hashlib.sha256(identity.encode()).hexdigest()[:40]


def tasks_client() -> tasks_v2.CloudTasksClient:
    """The real client: REST against the stand-in when CLOUD_TASKS_EMULATOR_HOST is set."""
    endpoint = os.environ.get(EMULATOR_ENV)
    if not endpoint:
        return tasks_v2.CloudTasksClient()
    from google.auth.credentials import AnonymousCredentials

    return tasks_v2.CloudTasksClient(
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=endpoint),
        transport="rest",
    )


class CloudTasksQueue:
    def __init__(
        self,
        queue: str,
        url: str,
        *,
        invoker: str | None = None,
        source: str = "//kumoflow.dev",
        client: tasks_v2.CloudTasksClient | None = None,
    ) -> None:
        self.queue = queue
        self.url = url
        self._invoker = invoker
        self._source = source
        self._client = client or tasks_client()

    @classmethod
    def from_env(cls, source: str) -> CloudTasksQueue | None:
        """The queue the environment names, or None when timers are not armed there."""
        queue, url = os.environ.get(QUEUE_ENV, ""), os.environ.get(URL_ENV, "")
        if not queue or not url:
            return None
        return cls(queue, url, invoker=os.environ.get(INVOKER_ENV) or None, source=source)

    def task(self, entry: OutboxEntry) -> tasks_v2.Task:
        name = task_id(entry)
        body = TimerDue(run_id=entry.run_id, entry_id=entry.id, due_at=entry.due_at)
        request = tasks_v2.HttpRequest(
            url=self.url,
            http_method=tasks_v2.HttpMethod.POST,
            headers={
                "Content-Type": "application/json",
                "ce-specversion": "1.0",
                "ce-type": TIMER_DUE,
                "ce-source": self._source,
                "ce-id": name,
                "ce-subject": f"{entry.run_id}/{entry.id}",
            },
            body=body.model_dump_json().encode(),
        )
        if self._invoker:
            request.oidc_token = tasks_v2.OidcToken(
                service_account_email=self._invoker, audience=self.url
            )
        return tasks_v2.Task(  # proto-plus takes datetime and timedelta for the proto times
            name=f"{self.queue}/tasks/{name}",
            schedule_time=entry.due_at,
            dispatch_deadline=DISPATCH_DEADLINE,
            http_request=request,
        )

    def arm(self, entries: Sequence[OutboxEntry]) -> None:
        for entry in entries:
            try:
                self._client.create_task(parent=self.queue, task=self.task(entry))
            except gexc.Conflict:  # ALREADY_EXISTS (409 over REST, where it is a Conflict)
                continue  # armed before: one push per (entry, due time)
            except gexc.GoogleAPICallError as e:
                raise TransientError(f"cannot schedule timer {entry.id}: {e}") from e


def ensure_queue(client: tasks_v2.CloudTasksClient, queue: str) -> None:
    """Create `queue` unless it exists (the stack; Terraform declares it in the cloud)."""
    parent = queue.rpartition("/queues/")[0]
    with contextlib.suppress(gexc.Conflict):  # ALREADY_EXISTS
        client.create_queue(parent=parent, queue=tasks_v2.Queue(name=queue))
