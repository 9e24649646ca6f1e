"""The sweeper's end of a deferred attempt (see _defer): call the task's check, then re-arm,
complete or fail the attempt exactly as its worker would have, under the claim's token."""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

from orchestrator.contracts import OutboxEntry, SourceRef, TaskRequested, TaskStatus
from orchestrator.engine import encode
from orchestrator.errors import KumoflowError
from orchestrator.io import services
from orchestrator.ports import Commit
from orchestrator.runtime._completion import report
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.worker._defer import Deferred, hold, hooks_of, next_poll, outlasted, stop
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
    claimed = _parked(rt, item)
    handle: dict[str, JsonValue] = item.detail.get("handle") or {}  # type: ignore[assignment]
    if not isinstance(claimed, Claimed):  # not ours any more: stop the work, drop the timer
        if claimed is not None:
            hooks = hooks_of(rt.resolver.resolve(*claimed))
            if hooks is not None and hooks.cancel is not None:
                with services(rt.blobs, rt.blocks, (rt.clock, rt.results_bucket)):
                    stop(hooks.cancel, handle, item)
        _done(rt, item)
        return
    outage = outlasted(rt, item)
    if outage is not None:  # it could not tell for too long (see _defer.OUTAGE_BUDGET)
        report(rt, failure(rt, claimed, outage))
        _done(rt, item)
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


def _parked(rt: Runtime, item: OutboxEntry) -> Claimed | tuple[str, SourceRef] | None:
    """The parked attempt as its worker held it; else where the task's function is (to cancel
    its work), or None when there is no such task."""
    snap = rt.state.load(item.run_id, [item.key or ""])
    if snap is None or item.key is None or item.attempt is None:
        return None
    plan = rt.plan_of(snap.run)
    planned = plan.tasks.get(item.key)
    task = snap.tasks.get(item.key)
    last = task.attempts[-1] if task and task.attempts else None
    if planned is None:
        return None
    ours = (
        task is not None
        and last is not None
        and not snap.run.status.terminal
        # As the engine's `renew`: a retry's running attempt leaves its task RETRYING.
        and task.status in (TaskStatus.RUNNING, TaskStatus.RETRYING)
        and task.attempt == item.attempt
        and last.token == item.detail.get("token")
    )
    if not ours or last is None or last.token is None:
        return planned.node.task, plan.spec.source
    req = TaskRequested(
        run_id=item.run_id, flow_version=snap.run.flow_version, key=item.key, attempt=item.attempt
    )
    uri = rt.task_result_uri(plan, item.run_id, item.key)
    started = last.started_at or rt.clock.now()
    worker = last.worker or "unknown"
    return Claimed(req, snap.run, plan, planned, plan.spec, last.token, worker, uri, started)


def _done(rt: Runtime, item: OutboxEntry) -> None:
    rt.state.commit(Commit(run_id=item.run_id, outbox_done=[item.id]))
