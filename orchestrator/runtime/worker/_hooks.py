"""State hooks and notifications of a flow attempt's end, run by a worker.

Every end is requested only after it is committed: a task's final state (SUCCEEDED, FAILED
once no retry is left, CANCELLED) commits a HOOKS outbox entry with it, so its hooks run while
the run goes on, as Prefect runs a task's hooks when the task ends; a run's end is announced
from its FINISH entry, which publishes a HooksRequested with it. Pub/Sub delivers each request
to a worker at least once, so each hook runs at least once per committed end, and never for an
end that was not committed. The worker reads the run as committed and calls the hooks of that
end with the run's (and task's) context set, then, for a run's failure, tells the flow's
notification blocks. A hook that raises is logged and recorded as a
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
    clip,
)
from orchestrator.runtime._context import RunScope, flow_scope_for, run_scope, task_scope_for
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.worker._notify import notify


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
    if req.key is not None:
        return _task_hooks(rt, req, req.key)
    snap = rt.state.load(req.run_id, [])
    if snap is None:
        return 0
    run = snap.run
    spec = rt.plan_of(run).spec
    # The hooks see the attempt that ended (the run may have been resumed since).
    ended = run.model_copy(update={"attempt": req.attempt})
    hooks = spec.hooks
    failed = 0
    error = run.error if run.attempt == req.attempt else None
    if hooks is not None:
        flow_scope = flow_scope_for(ended, spec)
        state = StateInfo(req.state, error.message if error else None, error)
        for ref in hooks.flow.for_state(req.state):
            args = (spec.options, flow_scope.flow_run, state)
            failed += _call(rt, req, ref, spec, flow_scope, args)
    told = (*(hooks.flow.notify if hooks else ()), *rt.notify)
    if req.state is HookState.FAILED and told:
        body = notification(run, req, error)
        for ref in dict.fromkeys(told):
            failed += _guarded(rt, req, f"notify {ref}", functools.partial(notify, rt, ref, body))
    return failed


def _task_hooks(rt: Runtime, req: HooksRequested, key: str) -> int:
    """A task's final state, committed: its hooks, with the attempt's context and error."""
    snap = rt.state.load(req.run_id, [key])
    task = snap.tasks.get(key) if snap is not None else None
    if snap is None or task is None or req.task_attempt is None:
        return 0
    plan = rt.plan_of(snap.run)
    planned = plan.tasks.get(key)
    hooks = plan.spec.hooks
    declared = hooks.tasks.get(planned.node.task) if hooks and planned else None
    if planned is None or declared is None:
        return 0
    spec = plan.spec
    attempt = next((a for a in task.attempts if a.number == req.task_attempt), None)
    error = (attempt.error if attempt is not None else None) or task.error
    ended = snap.run.model_copy(update={"attempt": req.attempt})
    options = planned.node.options
    scope = task_scope_for(ended, spec, key, req.task_attempt, options, {})
    state = StateInfo(req.state, error.message if error else None, error)
    failed = 0
    for ref in declared.for_state(req.state):
        failed += _call(rt, req, ref, spec, scope, (options, scope.task_run, state))
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
        end = f"{req.run_id}/{req.attempt}/{req.state.value}"
        if req.key is not None:
            end = f"{req.run_id}/{req.key}/{req.task_attempt}/{req.state.value}"
        identity = f"hooks|{end}|{what}"
        rt.letters.record(
            DeadLetter(
                id=hashlib.sha256(identity.encode()).hexdigest()[:32],
                received_at=rt.clock.now(),
                source="hooks",
                reason=reason,
                event_type="dev.kumoflow.hooks.requested",
                event_id=end,
                payload=req.model_dump_json(),
            )
        )
        return 1
