"""A worker's hold on one attempt: the claim that fences it with a token, the lease that
proves the worker is alive, and how long a failed attempt waits before the next. Pure, like
the rest of the engine."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from orchestrator.contracts import Attempt, RetryPolicy, TaskRun, TaskStatus
from orchestrator.engine._plan import Plan

S = TaskStatus


def claim(
    task: TaskRun,
    attempt: int,
    token: str,
    worker: str,
    now: datetime,
    lease_seconds: float,
    code: str | None = None,
) -> TaskRun | None:
    """A worker takes attempt `attempt` under fencing token `token`; None when that attempt is
    not waiting (a duplicate request, or someone holds it). A running attempt is never taken
    over here: when its lease runs out the sweeper fails it (LeaseExpired) and the retry policy
    decides whether a new attempt runs."""
    if task.attempt != attempt or task.status not in (S.QUEUED, S.SCHEDULED):
        return None
    status = S.RUNNING if task.status is S.QUEUED else S.RETRYING
    lease_until = now + timedelta(seconds=lease_seconds)
    current = task.attempts[-1].model_copy(
        update={
            "status": status,
            "started_at": now,
            "worker": worker,
            "token": token,
            "lease_until": lease_until,
            "code": code,
        }
    )
    return task.model_copy(
        update={
            "status": status,
            "attempts": (*task.attempts[:-1], current),
            "lease_until": lease_until,
            "redispatch_at": None,
            "child_run": None,
        }
    )


def held(task: TaskRun, attempt: int, token: str) -> Attempt | None:
    """The attempt `token` holds while it runs; None once it holds it no longer (it ended, or
    its lease ran out and another attempt or claim took over)."""
    last = task.attempts[-1] if task.attempts else None
    if (
        last is None
        or task.attempt != attempt
        or last.token != token
        or task.status not in (S.RUNNING, S.RETRYING)
    ):
        return None
    return last


def with_lease(
    task: TaskRun, last: Attempt, lease_until: datetime | None, **more: object
) -> TaskRun:
    """`task` with its running attempt's lease (and the record's queryable copy) set."""
    return task.model_copy(
        update={
            "attempts": (*task.attempts[:-1], last.model_copy(update={"lease_until": lease_until})),
            "lease_until": lease_until,
            **more,
        }
    )


def renew(
    task: TaskRun, attempt: int, token: str, now: datetime, lease_seconds: float
) -> TaskRun | None:
    """Extend the lease of the attempt `token` holds; None when it holds it no longer."""
    last = held(task, attempt, token)
    if last is None or last.lease_until is None:  # a subflow's wait has no lease to keep
        return None
    return with_lease(task, last, now + timedelta(seconds=lease_seconds))


def retry_delay(plan: Plan, run_id: str, key: str, retry_number: int) -> float:
    return policy_delay(plan.tasks[key].node.options.retry, run_id, key, retry_number)


def policy_delay(policy: RetryPolicy, run_id: str, key: str, retry_number: int) -> float:
    """Seconds before retry `retry_number` (1-based) of task `key`: the policy's delay, with
    its jitter drawn the same way wherever it is computed (the engine, the CLI's lines)."""
    base = policy.delay_for(retry_number)
    if not policy.jitter_factor or base == 0:
        return base
    # Deterministic jitter keeps the engine pure and replays identical.
    rng = random.Random(f"{run_id}/{key}/{retry_number}")
    spread = base * policy.jitter_factor
    return max(0.0, rng.uniform(base - spread, base + spread))
