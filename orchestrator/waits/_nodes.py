"""What the wait nodes share: the flow-body face of a built-in deferred task, the handle's
polling interval, and how a handle says what its node waits for."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import JsonValue

from orchestrator.contracts import OutboxEntry, OutboxKind
from orchestrator.errors import FlowDefinitionError
from orchestrator.io import current_place
from orchestrator.runtime import Deferred, in_flow_body
from orchestrator.sdk import Task

# Production's sweeper ticks every minute, the stack's every 0.5 s: a check is due at most
# this often while a wait has nothing; waits that a person ends back off up to MAX_POLL_S.
EVENT_POLL_S = 1.0
MAX_POLL_S = 60.0


class WaitKind(StrEnum):
    """What a parked wait node's handle stands for (its "wait" field)."""

    SLEEP = "sleep"
    EVENT = "event"
    PAUSE = "pause"


def node(task: Task[..., Any], what: str, kwargs: dict[str, Any]) -> Any:
    """`task` called in a flow body: a node of the DAG (outside a flow there is no run to
    park, and no function may wait)."""
    if not in_flow_body():
        raise FlowDefinitionError(f"{what}() is a node of a flow: call it inside a @flow body")
    return task(**kwargs)


def now() -> datetime:
    """The running runtime's clock (skipped, not waited, in tests)."""
    clock, _ = current_place()
    return clock.now()


def left(handle: dict[str, JsonValue], field: str = "deadline") -> float | None:
    """Seconds until the handle's `field` time (0 when past); None when it has none."""
    at = handle.get(field)
    if not isinstance(at, str):
        return None
    return max(0.0, (datetime.fromisoformat(at) - now()).total_seconds())


def later(handle: dict[str, JsonValue], seconds: float) -> Deferred:
    """Park again: the next check in `seconds`, never past the handle's deadline."""
    rest = left(handle)
    return Deferred(handle, poll_after=seconds if rest is None else min(seconds, rest))


def waiting_for(handle: dict[str, JsonValue]) -> str | None:
    """What a parked node waits for, for people (runs show, the dashboard); None when its
    handle is not a wait's."""
    kind = handle.get("wait")
    deadline = handle.get("deadline")
    until = f" (until {deadline})" if isinstance(deadline, str) else ""
    if kind == WaitKind.SLEEP:
        return f"sleep until {handle.get('until')}"
    if kind == WaitKind.EVENT:
        return f"event from {handle.get('source_key')}{until}"
    if kind == WaitKind.PAUSE:
        return f"input ({str(handle.get('model', '')).rpartition(':')[2]}){until}"
    return None


def handle_of(entry: OutboxEntry) -> dict[str, JsonValue]:
    handle = entry.detail.get("handle") if entry.kind is OutboxKind.CHECK else None
    return handle if isinstance(handle, dict) else {}


def waiting(outbox: Iterable[OutboxEntry]) -> dict[str, str]:
    """The run's parked wait nodes (from its outbox's check timers): key -> what it waits for."""
    return {
        e.key: text
        for e in outbox
        if e.key is not None and (text := waiting_for(handle_of(e))) is not None
    }
