"""CloudEvent `data` models of kumoflow's own events, and the envelope they travel in."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import BaseModel, Field, JsonValue

from ._dag import HookState
from ._options import Frozen, RunId, Version
from ._state import ErrorInfo, RunStatus, TriggerInfo, TriggerKind

TYPE_PREFIX: Final = "dev.kumoflow."
# The Pub/Sub attribute naming a task request's code bundle (Envelope.code).
CODE_ATTRIBUTE: Final = "kumoflow_code"


class RunRequested(Frozen):
    flow: str
    flow_version: Version | None = None  # None: the flow's latest registered version
    params: dict[str, JsonValue] = Field(default_factory=dict)
    run_id: RunId | None = None  # None: derived from the event id, so redelivery dedupes
    trigger: TriggerInfo = TriggerInfo(kind=TriggerKind.API)
    priority: int = 0  # the run's (see Run.priority)


class TaskRequested(Frozen):
    run_id: RunId
    flow_version: Version
    key: str
    attempt: int


NOT_A_LIST: Final = -1  # a reported length: the value a run-time map iterates is not a list
NO_PATH: Final = -2  # a reported length: the path to it does not resolve on the result


class TaskSucceeded(Frozen):
    run_id: RunId
    key: str
    attempt: int
    token: str  # the claim's fencing token
    result_uri: str  # must be the location the orchestrator derives itself; anything else is forged
    worker: str
    started_at: datetime
    ended_at: datetime
    cached: bool = False
    choice: str | None = None  # a gate's chosen branch (one of its node's `branches`)
    # The lengths of the lists run-time maps iterate over this result, by map node: the
    # orchestrator sizes them without loading the value. NOT_A_LIST / NO_PATH when it cannot.
    lengths: dict[str, int] = Field(default_factory=dict)


class TaskFailed(Frozen):
    run_id: RunId
    key: str
    attempt: int
    token: str  # the claim's fencing token
    error: ErrorInfo
    retryable: bool  # the worker evaluated retry_on against the exception's classes
    worker: str
    started_at: datetime
    ended_at: datetime


class RunSucceeded(Frozen):
    """A flow attempt succeeded (on the run-events topic; docs/howto/alerting.md)."""

    run_id: RunId
    flow: str
    flow_version: Version
    result_uri: str | None
    ended_at: datetime
    attempt: int = 1  # the flow attempt that ended (a resumed run ends once per attempt)


class RunFailed(Frozen):
    """A flow attempt ended otherwise (on the run-events topic; docs/howto/alerting.md):
    FAILED (a task's error; a run timeout: error type "TimeoutError") or CANCELLED (error
    type "Cancelled")."""

    run_id: RunId
    flow: str
    flow_version: Version
    error: ErrorInfo
    ended_at: datetime
    attempt: int = 1  # the flow attempt that ended (failed or cancelled)
    status: RunStatus = RunStatus.FAILED  # FAILED or CANCELLED


class HooksRequested(Frozen):
    """An end is committed; a worker runs its state hooks (at least once, as any request).

    Without `key`: a flow attempt's end (published with the run's end, once per attempt): the
    flow's hooks, and its notification blocks told of a failure. With `key`: the final state
    of that task's attempt `task_attempt` (published once the task's record is committed, so
    a task's hooks run before its run ends): that task's hooks only."""

    run_id: RunId
    flow_version: Version
    attempt: int  # the flow attempt
    state: HookState
    key: str | None = None
    task_attempt: int | None = None


class RunNotification(Frozen):
    """What a notification says about a run's end: the exact body a generic JSON webhook
    receives (Slack and Teams get a text made of it). Documented in docs/howto/alerting.md."""

    run_id: RunId
    flow: str
    flow_version: Version
    attempt: int
    state: HookState
    status: RunStatus
    error: ErrorInfo | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    text: str  # one line for people: "flow F run R failed: TYPE: message"


TIMER_DUE: Final = "dev.kumoflow.timer.due"


class TimerDue(Frozen):
    """The body of a timer's Cloud Task (a binary-mode CloudEvent of type TIMER_DUE): which
    outbox entry to fire. It only names the entry: the sweeper reads the entry from the store
    and fires what it finds there, so nothing in a task chooses what is done."""

    run_id: RunId
    entry_id: str
    due_at: datetime  # the due time the task was scheduled for (the entry may have moved since)


EVENT_TYPES: Final[dict[str, type[BaseModel]]] = {
    "dev.kumoflow.run.requested": RunRequested,
    "dev.kumoflow.task.requested": TaskRequested,
    "dev.kumoflow.task.succeeded": TaskSucceeded,
    "dev.kumoflow.task.failed": TaskFailed,
    "dev.kumoflow.run.succeeded": RunSucceeded,
    "dev.kumoflow.run.failed": RunFailed,
    "dev.kumoflow.hooks.requested": HooksRequested,
}
EVENT_TYPE_OF: Final[dict[type[BaseModel], str]] = {v: k for k, v in EVENT_TYPES.items()}


class Envelope(Frozen):
    """CloudEvents context attributes plus a typed `data`; the transport maps it to the wire."""

    id: str
    type: str
    source: str
    time: datetime
    subject: str | None = None
    data: (
        RunRequested
        | TaskRequested
        | TaskSucceeded
        | TaskFailed
        | RunSucceeded
        | RunFailed
        | HooksRequested
    )
    # The code bundle a task request must run on (its run's FlowSpec.bundle): the transport
    # carries it as the `kumoflow_code` attribute, which the subscription of the worker kept
    # for that code filters on (see infra/functions.tf "retained").
    code: str | None = None
