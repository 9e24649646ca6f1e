"""Deferred tasks: work that runs elsewhere (a BigQuery job, a Cloud Run job execution) and ends
without a function waiting for it.

A task function returns `Deferred(handle)` once it has started the work. The worker then parks
the attempt: it stays RUNNING under its claim's token, and a "check" timer in the run's outbox
(committed with a lease long enough to reach it) names the handle. The sweeper fires the timer
and calls the task's `check(handle)`: another `Deferred` re-arms the timer with backoff and
renews the lease; a value is the attempt's result; an exception is its failure (retried as the
task says). A check that could not tell (the API was away: it raised a retryable
KumoflowError, or its call outlived the sweeper item's deadline) is tried again with the
sweep's own backoff, and each backoff renews the parked attempt's lease past the next try
(`unsure`): an outage of up to OUTAGE_BUDGET never fails the attempt. Past it, the next
check fails the attempt with CheckUnavailable (retried as the task says). When the attempt is
no longer the parked one (the run was cancelled or timed out, the lease was taken),
`cancel(handle)` stops the work nobody waits for.

The check and cancel functions hang off the task function itself (`deferrable`), so the code
that runs comes from the flow's plan, never from a stored or delivered value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import JsonValue

from orchestrator.contracts import OutboxEntry, OutboxKind, TaskRequested, TaskRun
from orchestrator.engine import renew
from orchestrator.errors import CheckUnavailable
from orchestrator.ports import Commit
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime

# Production's sweeper ticks every minute, so checks there are at most a minute apart anyway;
# locally the stack ticks every 0.5 s. Backoff doubles from a task's first interval up to this.
MAX_POLL_S = 60.0
MIN_POLL_S = 0.5
# How long a check may keep failing to tell (503s, calls that hang) while its attempt stays
# parked; the attempt then fails with CheckUnavailable.
OUTAGE_BUDGET = timedelta(hours=1)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Deferred:
    """Returned by a deferrable task: the work started; `handle` (JSON, never a secret) is what
    its check needs to find it again. `poll_after`: seconds until the next check (None: double
    the last interval, up to MAX_POLL_S)."""

    handle: dict[str, JsonValue]
    poll_after: float | None = None


@dataclass(frozen=True)
class Hooks:
    check: Callable[[dict[str, JsonValue]], Any]
    cancel: Callable[[dict[str, JsonValue]], None] | None


def deferrable(
    check: Callable[[dict[str, JsonValue]], Any],
    cancel: Callable[[dict[str, JsonValue]], None] | None = None,
) -> Callable[[F], F]:
    """Mark a task function as one that may return `Deferred`; put `@task` on top of it."""

    def mark(fn: F) -> F:
        fn.__kumoflow_deferred__ = Hooks(check, cancel)  # type: ignore[attr-defined]
        return fn

    return mark


def hooks_of(fn: Callable[..., Any]) -> Hooks | None:
    found = getattr(fn, "__kumoflow_deferred__", None)
    return found if isinstance(found, Hooks) else None


def next_poll(deferred: Deferred, last: float | None) -> float:
    if deferred.poll_after is not None:
        return max(MIN_POLL_S, min(deferred.poll_after, MAX_POLL_S))
    return MIN_POLL_S * 2 if last is None else min(max(last, MIN_POLL_S) * 2, MAX_POLL_S)


def check_entry(
    req: TaskRequested, token: str, handle: dict[str, JsonValue], poll: float, now: Any
) -> OutboxEntry:
    return OutboxEntry(
        id=f"check-{req.key}-{req.attempt}",
        run_id=req.run_id,
        kind=OutboxKind.CHECK,
        due_at=now + timedelta(seconds=poll),
        timer=True,
        key=req.key,
        attempt=req.attempt,
        detail={"token": token, "handle": handle, "poll": poll},
    )


def hold(
    rt: Runtime,
    req: TaskRequested,
    token: str,
    handle: dict[str, JsonValue],
    poll: float,
    note: Callable[[TaskRun], TaskRun] | None = None,
) -> bool:
    """Renew the parked attempt's lease past its next check and (re)arm that check, in one
    commit conditional on the task record (`note` adds to it: a job's execution); False when
    `token` no longer holds the attempt."""

    def attempt() -> bool:
        tasks, etags = rt.state.tasks(req.run_id, [req.key])
        task: TaskRun | None = tasks.get(req.key)
        now = rt.clock.now()
        # One lease of slack past the check: a sweep tick late by up to a lease still finds it.
        longer = task and renew(task, req.attempt, token, now, poll + rt.lease_seconds)
        if not longer:
            return False
        rt.state.commit(
            Commit(
                run_id=req.run_id,
                tasks=[(note(longer) if note else longer, etags[req.key])],
                outbox_add=[check_entry(req, token, handle, poll, now)],
            )
        )
        return True

    # A conflict: the worker's lease thread renewed at the same moment.
    return retried(attempt, what=f"run {req.run_id}: holding {req.key!r}")


def park(
    rt: Runtime,
    req: TaskRequested,
    token: str,
    deferred: Deferred,
    cancel: Callable[[dict[str, JsonValue]], None],
    note: Callable[[TaskRun], TaskRun] | None = None,
) -> None:
    """The worker's end of a deferred attempt: held for the sweeper, or its work cancelled
    when the claim was lost meanwhile (nobody would check it)."""
    try:
        held = hold(rt, req, token, deferred.handle, next_poll(deferred, None), note)
    except Exception:
        stop(cancel, deferred.handle, req)
        raise
    if not held:
        stop(cancel, deferred.handle, req)


def stop(
    cancel: Callable[[dict[str, JsonValue]], None], handle: dict[str, JsonValue], req: Any
) -> None:
    """Best effort: the work's own timeout bounds it anyway."""
    try:
        cancel(handle)
    except Exception:
        LOGGER.exception("cancelling the deferred work of %s in run %s", req.key, req.run_id)


def unsure(rt: Runtime, item: OutboxEntry, failures: int, later: datetime, reason: str) -> bool:
    """The sweep's backoff of a check that could not tell: re-arm it at `later` (noting since
    when it cannot tell, and why) and renew the parked attempt's lease past it, in one commit
    conditional on the task record. False when its token no longer holds the attempt (nobody
    needs the lease then; the next check stops the work)."""
    token = item.detail.get("token")
    if not isinstance(token, str) or item.key is None or item.attempt is None:
        return False
    since = item.detail.get("unsure_since") or rt.clock.now().isoformat()
    detail = {**item.detail, "unsure_since": since, "unsure_reason": reason[:500]}
    again = item.model_copy(update={"failures": failures, "due_at": later, "detail": detail})

    key, attempt_number, held_by = item.key, item.attempt, token

    def attempt() -> bool:
        tasks, etags = rt.state.tasks(item.run_id, [key])
        task: TaskRun | None = tasks.get(key)
        now = rt.clock.now()
        seconds = (later - now).total_seconds() + rt.lease_seconds
        longer = task and renew(task, attempt_number, held_by, now, seconds)
        if not longer:
            return False
        rt.state.commit(
            Commit(run_id=item.run_id, tasks=[(longer, etags[key])], outbox_add=[again])
        )
        return True

    return retried(attempt, what=f"run {item.run_id}: holding {item.key!r}")


def outlasted(rt: Runtime, item: OutboxEntry) -> CheckUnavailable | None:
    """The error that ends a parked attempt whose check could not tell for OUTAGE_BUDGET."""
    since = item.detail.get("unsure_since")
    if not isinstance(since, str) or rt.clock.now() - datetime.fromisoformat(since) < OUTAGE_BUDGET:
        return None
    return CheckUnavailable(
        f"the check of deferred task {item.key!r} (attempt {item.attempt}) could not tell the "
        f"state of its work for {OUTAGE_BUDGET} (since {since}; last: "
        f"{item.detail.get('unsure_reason')}); the attempt fails"
    )
