"""The sweeper's end of a deferred attempt (see _defer): call the task's check, then re-arm,
complete or fail the attempt exactly as its worker would have, under the claim's token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import JsonValue

from orchestrator.contracts import (
    NodeSpec,
    OutboxEntry,
    SourceRef,
    TaskRequested,
    TaskRuntime,
    TaskStatus,
)
from orchestrator.engine import encode
from orchestrator.errors import KumoflowError
from orchestrator.io import services
from orchestrator.ports import Commit
from orchestrator.runtime._completion import report
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.worker._defer import Deferred, hold, hooks_of, next_poll, outlasted, stop
from orchestrator.runtime.worker._job import job_cancel, job_outcome
from orchestrator.runtime.worker._worker import (
    Claimed,
    cancel_hook,
    failure,
    store_result,
    succeeded_with,
)


def check(rt: Runtime, item: OutboxEntry) -> None:
    """Fire one check timer. Raises (for the sweep's backoff) only when the check could not
    tell: a retryable KumoflowError from it, or the store being away."""
    token = item.detail.get("token")
    claimed = parked(rt, item.run_id, item.key, item.attempt, token)
    handle: dict[str, JsonValue] = item.detail.get("handle") or {}  # type: ignore[assignment]
    if not isinstance(claimed, Claimed):  # not ours any more: stop the work, drop the timer
        if claimed is not None:
            node, source = claimed
            cancel: Callable[[dict[str, JsonValue]], None] | None = None
            if node.options.runtime is TaskRuntime.JOB:
                cancel = job_cancel(rt)
            else:
                hooks = hooks_of(rt.resolver.resolve(node.task, source))
                cancel = hooks.cancel if hooks is not None else None
            if cancel is not None:
                with services(rt.blobs, rt.blocks, (rt.clock, rt.results_bucket)):
                    stop(cancel, handle, item)
        _done(rt, item)
        return
    outage = outlasted(rt, item)
    if outage is not None:  # it could not tell for too long (see _defer.OUTAGE_BUDGET)
        report(rt, failure(rt, claimed, outage))
        _done(rt, item)
        return
    if claimed.planned.node.options.runtime is TaskRuntime.JOB:
        _check_job(rt, item, claimed, handle)
        return
    hooks = hooks_of(rt.resolver.resolve(claimed.planned.node.task, claimed.spec.source))
    if hooks is None:  # the task's code changed under a running attempt: cannot check it
        report(rt, failure(rt, claimed, KumoflowError("the task is no longer deferrable")))
        _done(rt, item)
        return
    try:
        with services(rt.blobs, rt.blocks, (rt.clock, rt.results_bucket)):
            outcome: Any = hooks.check(handle)
    except KumoflowError as e:
        if e.retryable:
            raise  # could not tell: the sweep backs the item off and tries again
        report(rt, failure(rt, claimed, e))
        _done(rt, item)
        return
    except Exception as e:  # the work failed: the attempt failed, retried as the task says
        report(rt, failure(rt, claimed, e))
        _done(rt, item)
        return
    if isinstance(outcome, Deferred):
        last = item.detail.get("poll")
        poll = next_poll(outcome, float(last) if isinstance(last, int | float) else None)
        if not hold(rt, claimed.req, claimed.token, outcome.handle, poll):
            stop(cancel_hook(rt, claimed), outcome.handle, item)
            _done(rt, item)
        return
    options = claimed.planned.node.options
    data, ctype, _ = encode(outcome, options.result_serializer, what=f"task {item.key!r}")
    succeeded_with(rt, claimed, store_result(rt, claimed, data, ctype))
    _done(rt, item)


def _check_job(
    rt: Runtime, item: OutboxEntry, claimed: Claimed, handle: dict[str, JsonValue]
) -> None:
    """A job attempt's check (see _job): its execution's state, not the task's own hooks."""
    try:
        outcome = job_outcome(rt, handle, claimed.uri)
    except KumoflowError as e:
        if e.retryable:
            raise  # could not tell: the sweep backs the item off and tries again
        report(rt, failure(rt, claimed, e))
    except Exception as e:  # the execution ended without the attempt's result
        report(rt, failure(rt, claimed, e))
    else:
        if isinstance(outcome, Deferred):
            last = item.detail.get("poll")
            poll = next_poll(outcome, float(last) if isinstance(last, int | float) else None)
            if not hold(rt, claimed.req, claimed.token, outcome.handle, poll):
                stop(job_cancel(rt), outcome.handle, item)
            else:
                return
        else:
            succeeded_with(rt, claimed, outcome)
    _done(rt, item)


def parked(
    rt: Runtime, run_id: str, key: str | None, attempt: int | None, token: JsonValue
) -> Claimed | tuple[NodeSpec, SourceRef] | None:
    """Attempt `attempt` of `key` as the claim `token` holds it (a parked attempt, a job
    execution's); else the task's node and where its function is (to cancel its work), or
    None when there is no such task."""
    snap = rt.state.load(run_id, [key or ""])
    if snap is None or key is None or attempt is None:
        return None
    plan = rt.plan_of(snap.run)
    planned = plan.tasks.get(key)
    task = snap.tasks.get(key)
    last = task.attempts[-1] if task and task.attempts else None
    if planned is None:
        return None
    ours = (
        task is not None
        and last is not None
        and not snap.run.status.terminal
        # As the engine's `renew`: a retry's running attempt leaves its task RETRYING.
        and task.status in (TaskStatus.RUNNING, TaskStatus.RETRYING)
        and task.attempt == attempt
        and last.token == token
    )
    if not ours or last is None or last.token is None:
        return planned.node, plan.spec.source
    req = TaskRequested(run_id=run_id, flow_version=snap.run.flow_version, key=key, attempt=attempt)
    uri = rt.task_result_uri(plan, run_id, key)
    started = last.started_at or rt.clock.now()
    worker = last.worker or "unknown"
    return Claimed(req, snap.run, plan, planned, plan.spec, last.token, worker, uri, started)


def _done(rt: Runtime, item: OutboxEntry) -> None:
    rt.state.commit(Commit(run_id=item.run_id, outbox_done=[item.id]))
