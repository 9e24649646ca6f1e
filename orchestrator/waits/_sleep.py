"""`sleep(seconds)` / `sleep_until(when)`: a node that ends at its time. Its attempt parks at
once (a deferred task: no function waits) with a check timer due at the end; the sweeper
fires it and the node succeeds (with None) through the same completion as any deferred
attempt. A check that comes early (a long sleep is checked at least every MAX_POLL_S, as
the timer machinery polls) parks it again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import JsonValue

from orchestrator.runtime import Deferred, deferrable
from orchestrator.sdk import task
from orchestrator.waits._nodes import WaitKind, left, node, now


def _check(handle: dict[str, JsonValue]) -> Deferred | None:
    rest = left(handle, "until")
    return Deferred(handle, poll_after=rest) if rest else None


def _park(until: datetime) -> Deferred | None:
    handle: dict[str, JsonValue] = {"wait": WaitKind.SLEEP.value, "until": until.isoformat()}
    return _check(handle)


@task(name="sleep")
@deferrable(_check)
def sleep_for(seconds: float) -> Deferred | None:
    """The node behind `sleep`: its end is counted from when its attempt starts."""
    return _park(now() + timedelta(seconds=seconds))


@task(name="sleep-until")
@deferrable(_check)
def sleep_until_time(until: str) -> Deferred | None:
    """The node behind `sleep_until` (`until`: an ISO 8601 time; naive times are UTC)."""
    when = datetime.fromisoformat(until)
    return _park(when if when.tzinfo else when.replace(tzinfo=UTC))


def sleep(seconds: Any, *, wait_for: Any = None) -> Any:
    """In a flow body: a node that ends `seconds` after it starts. Order work after it with
    `wait_for=[...]` (it returns None); `seconds` may be a parameter or a task's result."""
    return node(sleep_for, "sleep", {"seconds": seconds, "wait_for": wait_for})


def sleep_until(when: Any, *, wait_for: Any = None) -> Any:
    """In a flow body: a node that ends at `when` (a datetime, an ISO 8601 string, or a
    parameter or task result holding one); at once when that has passed."""
    until = when.isoformat() if isinstance(when, datetime) else when
    return node(sleep_until_time, "sleep_until", {"until": until, "wait_for": wait_for})
