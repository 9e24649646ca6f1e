"""State hooks and notifications of a flow attempt's end, run by a worker.

A run's end is announced only after it is committed (the FINISH outbox entry), and the
announcement publishes a HooksRequested with it; Pub/Sub delivers that to a worker at least
once, so each hook runs at least once per committed end, and never for an end that was not
committed. The worker reads the run as committed, calls the flow's hooks for that end and each
task's hooks for its task's final state, with the run's (and task's) context set, then tells
the flow's notification blocks of a failure. A hook that raises is logged and recorded as a
dead letter (`kumoflow dlq list`); nothing here ever changes a run's state.

Hooks are called as Prefect calls them: `hook(flow, flow_run, state)` for a flow (`flow` is the
flow's options: `.name`), `hook(task, task_run, state)` for a task.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.contracts import (
    DeadLetter,
    ErrorInfo,
    FlowSpec,
    HooksRequested,
    HookState,
    Run,
    RunNotification,
    RunStatus,
    TaskStatus,
    clip,
)
from orchestrator.runtime._context import RunScope, flow_scope_for, run_scope, task_scope_for
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.worker._notify import notify

TASK_HOOK_STATE = {
    TaskStatus.SUCCEEDED: HookState.COMPLETED,
    TaskStatus.FAILED: HookState.FAILED,
    TaskStatus.CANCELLED: HookState.CANCELLED,
}


@dataclass(frozen=True)
class StateInfo:
    """The state a hook is called for (the parts of Prefect's State a hook reads)."""

    type: HookState
    message: str | None = None
    error: ErrorInfo | None = None

    @property
    def name(self) -> str:
        return self.type.value

    def is_failed(self) -> bool:
        return self.type is HookState.FAILED

    def is_completed(self) -> bool:
        return self.type is HookState.COMPLETED

    def is_cancelled(self) -> bool:
        return self.type is HookState.CANCELLED


def run_hooks(rt: Runtime, req: HooksRequested) -> int:
    """Run what `req`'s end calls for; returns how many hooks and notifications failed."""
    snap = rt.state.load(req.run_id)  # the whole run, once per flow attempt's end
    if snap is None:
        return 0
    run = snap.run
    plan = rt.plan_of(run)
    spec = plan.spec
    # The hooks see the attempt that ended (the run may have been resumed since).
    ended = run.model_copy(update={"attempt": req.attempt})
    hooks = spec.hooks
    failed = 0
    error = run.error if run.attempt == req.attempt else None
    flow_scope = flow_scope_for(ended, spec)
    if hooks is not None:
        state = StateInfo(req.state, error.message if error else None, error)
        for ref in hooks.flow.for_state(req.state):
            args = (spec.options, flow_scope.flow_run, state)
            failed += _call(rt, req, ref, spec, flow_scope, args)
        for key in sorted(snap.tasks):
            task = snap.tasks[key]
            planned = plan.tasks.get(key)
            wanted = TASK_HOOK_STATE.get(task.status)
            task_hooks = hooks.tasks.get(planned.node.task) if planned else None
            if planned is None or wanted is None or task_hooks is None:
                continue
            options = planned.node.options
            scope = task_scope_for(ended, spec, key, task.attempt, options, {})
            task_state = StateInfo(wanted, task.error.message if task.error else None, task.error)
            for ref in task_hooks.for_state(wanted):
                failed += _call(rt, req, ref, spec, scope, (options, scope.task_run, task_state))
    told = (*(hooks.flow.notify if hooks else ()), *rt.notify)
    if req.state is HookState.FAILED and told:
        body = notification(run, req, error)
        for ref in dict.fromkeys(told):
            failed += _guarded(rt, req, f"notify {ref}", functools.partial(notify, rt, ref, body))
    return failed


def notification(run: Run, req: HooksRequested, error: ErrorInfo | None) -> RunNotification:
    what = f"flow {run.flow} run {run.run_id} {req.state.value}"
    return RunNotification(
        run_id=run.run_id,
        flow=run.flow,
        flow_version=run.flow_version,
        attempt=req.attempt,
        state=req.state,
        status=run.status if run.attempt == req.attempt else RunStatus.FAILED,
        error=error,
        started_at=run.started_at,
        ended_at=run.ended_at,
        text=f"{what}: {error.type}: {error.message}" if error else what,
    )


def _call(
    rt: Runtime,
    req: HooksRequested,
    ref: str,
    spec: FlowSpec,
    scope: RunScope,
    args: tuple[Any, ...],
) -> int:
    def call() -> None:
        fn = rt.resolver.resolve(ref, spec.source)
        with run_scope(scope):
            fn(*args)

    return _guarded(rt, req, f"hook {ref}", call)


def _guarded(rt: Runtime, req: HooksRequested, what: str, fn: Callable[[], None]) -> int:
    """Run `fn`; a failure is logged and recorded once per (end, hook), never raised."""
    try:
        fn()
        return 0
    except Exception as e:
        reason = clip(f"{what} failed: {type(e).__name__}: {e}", 2000)
        LOGGER.error(reason, extra={"run_id": req.run_id, "function": "hooks"})
        identity = f"hooks|{req.run_id}|{req.attempt}|{req.state.value}|{what}"
        rt.letters.record(
            DeadLetter(
                id=hashlib.sha256(identity.encode()).hexdigest()[:32],
                received_at=rt.clock.now(),
                source="hooks",
                reason=reason,
                event_type="dev.kumoflow.hooks.requested",
                event_id=f"{req.run_id}/{req.attempt}/{req.state.value}",
                payload=req.model_dump_json(),
            )
        )
        return 1
