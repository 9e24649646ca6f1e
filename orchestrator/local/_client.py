"""A client of the running local stack: its Runtime, and runs started, followed and cancelled."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from orchestrator.contracts import OutboxKind, Run, RunRequested, TaskRun
from orchestrator.engine import CancelRun
from orchestrator.errors import KumoflowError, NotFoundError
from orchestrator.local._stack import DevStack, require_running, serve
from orchestrator.ports import Snapshot
from orchestrator.runtime import (
    Runtime,
    advance,
    bind_params,
    check_types,
    cloud_runtime,
    refuse_blocks,
    secret_params,
)
from orchestrator.sdk import Flow

POLL_S = 0.1
PROGRESS_S = 0.5
Progress = Callable[[Run, dict[str, TaskRun]], None]


def stack_runtime() -> Runtime:
    """The Runtime over the running local stack (or a clear error saying how to start it)."""
    stack = DevStack.from_env()
    require_running(stack)
    return cloud_runtime(stack.config.project, source=f"//kumoflow.dev/cli/{stack.config.project}")


def submit(rt: Runtime, flow: Flow[Any, Any], params: dict[str, Any], *, priority: int = 0) -> str:
    """Register `flow` and request a run of it, as any producer would; returns the run id."""
    spec = flow.spec
    # Fail here, not in a dead letter.
    refuse_blocks(spec, params)  # the run starter takes no block from a message
    bound = bind_params(spec.params, params, flow=spec.name)
    check_types(flow.fn, bound, flow=spec.name, secret=secret_params(spec))
    serve(DevStack.from_env(), [spec])  # its BigQuery or Cloud Run, unless running already
    version = rt.flows.put_flow(spec)
    run_id = uuid.uuid4().hex[:20]
    rt.publish(
        rt.topics.runs,
        RunRequested(
            flow=spec.name, flow_version=version, params=params, run_id=run_id, priority=priority
        ),
        event_id=f"cli-{run_id}",
    )
    return run_id


def follow(
    rt: Runtime, run_id: str, *, timeout: float | None = None, progress: Progress | None = None
) -> Snapshot:
    """Wait until the run ends and its finish is recorded (result written, event published).

    Waiting reads the run document only (one read a poll); the whole run is read for the
    progress display at most every PROGRESS_S (longer for wide runs), and once at the end."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen_at = time.monotonic()
    shown_at = 0.0
    every = PROGRESS_S
    while True:
        head = rt.state.load(run_id, [])
        if head is not None:
            if progress is not None and time.monotonic() - shown_at >= every:
                full = rt.state.load(run_id)
                if full is not None:
                    progress(full.run, full.tasks)
                    every = PROGRESS_S * max(1.0, len(full.tasks) / 500)
                shown_at = time.monotonic()
            if head.run.status.terminal:
                snap = rt.state.load(run_id)
                if snap is not None and not any(e.kind is OutboxKind.FINISH for e in snap.outbox):
                    if progress is not None:
                        progress(snap.run, snap.tasks)
                    return snap
        elif time.monotonic() - seen_at > 30:
            raise NotFoundError(
                f"run {run_id} did not appear within 30 s; see `kumoflow dlq "
                "list` and the function logs (`kumoflow dev status`)"
            )
        if deadline is not None and time.monotonic() > deadline:
            raise KumoflowError(
                f"run {run_id} still running after {timeout} s; follow it with "
                f"`kumoflow runs show {run_id}`"
            )
        time.sleep(POLL_S)


def load_run(rt: Runtime, run_id: str) -> Snapshot:
    snap = rt.state.load(run_id)
    if snap is None:
        raise NotFoundError(f"no run {run_id!r}; list runs with `kumoflow runs list`")
    return snap


def cancel_run(rt: Runtime, run_id: str, reason: str) -> Snapshot:
    """Cancel through the engine, as the orchestrator would: what runs finishes unobserved."""
    load_run(rt, run_id)
    advance(rt, run_id, CancelRun(reason))
    return load_run(rt, run_id)
