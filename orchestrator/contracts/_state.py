"""Run and task-run documents (one Firestore document each) and their state enums."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, JsonValue, field_validator, model_validator

from ._limits import SlotHold
from ._options import Frozen, RunId, Version

# What a stored or published error may hold: user code and outsiders choose these strings, and a
# task document (three attempts, each with its error) must stay far under Firestore's 1 MiB.
MAX_MESSAGE_CHARS = 4_000
MAX_TRACEBACK_CHARS = 8_000
# A dead letter's text: what is kept of the input and of the reason (outsiders choose both).
DEAD_LETTER_PAYLOAD_CHARS = 4_096
DEAD_LETTER_REASON_CHARS = 2_000


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with a mark saying how much was cut."""
    if len(text) <= limit:
        return text
    mark = f" ... [truncated {len(text) - limit} chars]"
    return text[: max(0, limit - len(mark))] + mark


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"  # waiting for a retry delay to pass
    QUEUED = "QUEUED"  # task.requested published (or in the outbox)
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"  # an attempt failed; the next one is scheduled
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # an upstream task failed, so this one never ran
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_TASK


_TERMINAL_TASK = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED}
)


class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class ErrorInfo(Frozen):
    type: str  # fully qualified exception class name
    message: str
    traceback: str | None = None
    task: str | None = None  # node key of the task that failed, when a task did

    @field_validator("type", "message")
    @classmethod
    def _clip_message(cls, value: str) -> str:
        return clip(value, MAX_MESSAGE_CHARS)

    @field_validator("traceback")
    @classmethod
    def _clip_traceback(cls, value: str | None) -> str | None:
        # The end of a traceback says where it failed: keep that part.
        if value is None or len(value) <= MAX_TRACEBACK_CHARS:
            return value
        return (
            f"[truncated {len(value) - MAX_TRACEBACK_CHARS} chars] ..."
            + value[-MAX_TRACEBACK_CHARS:]
        )


class Attempt(Frozen):
    number: int
    status: TaskStatus
    flow_attempt: int = 1  # task retries are counted within one flow attempt
    queued_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    worker: str | None = None
    # The fencing token of the claim running this attempt: a fresh one per claim. Completions
    # and lease renewals carry it; anything with another token is stale.
    token: str | None = None
    # A claim expires unless renewed: a worker that died mid-attempt must not block the task.
    lease_until: datetime | None = None
    result_uri: str | None = None
    error: ErrorInfo | None = None
    # Digest of the task's module as the worker that claimed this attempt imported it (the
    # flow's FlowSpec.code holds the deployed one); None in records older than this field.
    code: str | None = None
    # A job-run attempt's Cloud Run execution (its full name) and where its logs are.
    execution: str | None = None
    logs_url: str | None = None
    # The concurrency key this attempt took its slot under, when computed from its inputs (a
    # static key is in the task's options): what frees the slot reads it here.
    slot_key: str | None = None
    # The slot it took at its claim, when its store says which (Firestore): its end frees it
    # with one write instead of looking it up first.
    slot: SlotHold | None = None


class TaskRun(Frozen):
    run_id: RunId
    key: str
    node: str  # NodeSpec key; differs from `key` for mapped children ("node[3]")
    name: str
    map_index: int | None = None
    status: TaskStatus = TaskStatus.PENDING
    attempts: tuple[Attempt, ...] = ()
    result_uri: str | None = None
    next_attempt_at: datetime | None = None
    # While an attempt runs: when its claim expires (a queryable copy of the attempt's lease).
    lease_until: datetime | None = None
    # While an attempt waits in QUEUED: when the sweeper requests it again, in case its dispatch
    # was lost (a publish that failed after the commit that queued it, with no redelivery).
    redispatch_at: datetime | None = None
    choice: str | None = None  # a gate's chosen branch, once it succeeded
    # A succeeded task's reported list lengths (see TaskSucceeded.lengths); a run-time map's
    # own record and its children: how many children it has.
    lengths: dict[str, int] = Field(default_factory=dict)
    width: int | None = None
    # A run-time map's growth cursor: how many of its `width` children exist (it grows in
    # chunks, RUNNING until it has them all).
    grown: int | None = None
    child_run: str | None = None  # a subflow node's current attempt: the child run it waits on
    error: ErrorInfo | None = None

    @property
    def attempt(self) -> int:
        """Number of the current (latest) attempt; 0 before the first one is queued."""
        return self.attempts[-1].number if self.attempts else 0


class TriggerKind(StrEnum):
    """What started a run."""

    API = "api"  # kumoflow run, a run.requested event, the dashboard
    PUBSUB = "pubsub"
    GCS = "gcs"
    SCHEDULE = "schedule"
    SUBFLOW = "subflow"  # a parent run's node


class TriggerInfo(Frozen):
    kind: TriggerKind
    source: str | None = None  # topic, bucket/object#generation, job name
    event_id: str | None = None
    detail: dict[str, JsonValue] = Field(default_factory=dict)


class ParentRef(Frozen):
    """A subflow's run: the parent's node attempt it stands for. Its end completes that attempt
    (fenced by the claim's token), and its result is stored where that node's result lives."""

    run_id: RunId
    key: str
    attempt: int
    token: str
    result_uri: str


class Run(Frozen):
    run_id: RunId
    flow: str
    flow_version: Version
    params: dict[str, JsonValue]
    status: RunStatus = RunStatus.PENDING
    attempt: int = 1  # flow-level attempt (flow retries)
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    timeout_at: datetime | None = None
    result_uri: str | None = None
    error: ErrorInfo | None = None
    trigger: TriggerInfo = TriggerInfo(kind=TriggerKind.API)
    parent: ParentRef | None = None  # set on a subflow's run
    # Among runs waiting for a run slot (max_active_runs), and its tasks' tickets unless a
    # task sets its own priority: higher first.
    priority: int = 0


class OutboxKind(StrEnum):
    """The effects an outbox entry stands for."""

    DISPATCH = "dispatch"  # publish task.requested for (key, attempt); a timer when delayed
    FINISH = "finish"  # announce the end of flow attempt `attempt`
    WAKE = "wake"  # re-derive the run (its timeout, the hourly recheck)
    CHECK = "check"  # call a parked deferred attempt's check
    WINDOW = "window"  # a trigger window's close timer ("close") and its events ("ev-...")
    HOOKS = "hooks"  # request a task's state hooks for the final state it was committed with


class OutboxEntry(Frozen):
    """A side effect committed with the state change that caused it, done after the commit.

    Redelivery or a sweep re-runs what a crash between commit and publish left undone; the
    deterministic id keeps racing writers from recording one effect twice.
    """

    id: str
    run_id: str
    kind: OutboxKind
    due_at: datetime
    # A timer waits for due_at (a retry delay, a timeout); other entries are done right after
    # their commit, and the sweep only picks them up when that evidently did not happen.
    timer: bool = False
    key: str | None = None
    attempt: int | None = None
    failures: int = 0  # sweeps that failed to do it; quarantined after a few
    # A "check": the fencing token of the parked attempt, the handle its task's check reads
    # (a job id, an execution name; never a secret) and the current polling interval.
    detail: dict[str, JsonValue] = Field(default_factory=dict)


class DeadLetter(Frozen):
    id: str
    received_at: datetime
    source: str  # which function or trigger rejected it
    reason: str
    event_type: str | None = None
    event_id: str | None = None
    payload: str | None = None  # the raw input, truncated
    # Where the input arrived and with which message attributes: what a redrive publishes again.
    topic: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    exact: bool = False  # `payload` is the input itself: neither truncated nor masked
    # The one flow that refused it, when the input was for every flow on its topic (others may
    # have taken it): a redrive re-delivers it to this flow only. None: refused as a whole.
    flow: str | None = None
    redriven_at: datetime | None = None  # `kumoflow dlq redrive` published it again

    @model_validator(mode="before")
    @classmethod
    def _clipped(cls, value: Any) -> Any:
        """One size rule wherever a record is built (edge, sink, sweeper; any store keeps the
        same): the reason and the input are clipped, and a clipped input is no longer exact."""
        if not isinstance(value, dict):
            return value
        out = dict(value)
        if isinstance(reason := out.get("reason"), str):
            out["reason"] = clip(reason, DEAD_LETTER_REASON_CHARS)
        payload = out.get("payload")
        if isinstance(payload, str) and len(payload) > DEAD_LETTER_PAYLOAD_CHARS:
            out["payload"] = clip(payload, DEAD_LETTER_PAYLOAD_CHARS)
            out["exact"] = False
        return out
