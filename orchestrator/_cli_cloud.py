"""CLI commands against the emulator stack: run, follow, list and show runs, dead letters."""

from __future__ import annotations

import time
import uuid
from typing import Any

from contracts import RunRequested, RunStatus, TaskRun
from orchestrator._advance import bind_params, check_types
from orchestrator._devstack import DevStack, require_running
from orchestrator._errors import KumoflowError, NotFoundError
from orchestrator._ports import Snapshot
from orchestrator._progress import summary, task_order
from orchestrator._runtime import Runtime
from orchestrator._values import decode

POLL_S = 0.1


def cloud_runtime() -> tuple[Runtime, Any]:
    """The Runtime over the running local stack (or a clear error saying how to start it)."""
    stack = DevStack.from_env()
    require_running(stack)
    from orchestrator._cloud import cloud_runtime as build

    return build(stack.config.project, source=f"//kumoflow.dev/cli/{stack.config.project}")


def run_on_emulator(
    flow: Any, params: dict[str, Any], *, as_json: bool, no_wait: bool, timeout: float | None = None
) -> dict[str, Any]:
    rt, store = cloud_runtime()
    spec = flow.spec
    # Fail here, not in a dead letter.
    check_types(flow.fn, bind_params(spec.params, params, flow=spec.name), flow=spec.name)
    version = store.put_flow(spec)
    run_id = uuid.uuid4().hex[:20]
    rt.publish(
        rt.topics.runs,
        RunRequested(flow=spec.name, flow_version=version, params=params, run_id=run_id),
        event_id=f"cli-{run_id}",
    )
    if no_wait:
        return {
            "run_id": run_id,
            "flow": spec.name,
            "status": "started",
            "result": None,
            "error": None,
            "tasks": [],
        }
    order = [n.key for n in spec.nodes]
    if as_json:
        snap = follow(rt, run_id, timeout=timeout)
    else:
        from rich.console import Console

        from orchestrator._progress import LiveProgress

        with LiveProgress(Console(stderr=True), spec.name, order) as progress:
            snap = follow(rt, run_id, timeout=timeout, progress=progress)
    return describe(rt, snap, order)


def follow(
    rt: Runtime, run_id: str, *, timeout: float | None = None, progress: Any = None
) -> Snapshot:
    """Poll until the run ends and its finish is recorded (result written, event published)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen_at = time.monotonic()
    while True:
        snap = rt.state.load(run_id)
        if snap is not None:
            if progress is not None:
                progress(snap.run, snap.tasks)
            if snap.run.status.terminal and not any(e.kind == "finish" for e in snap.outbox):
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


def describe(
    rt: Runtime, snap: Snapshot, order: list[str] | None = None, *, detail: bool = False
) -> dict[str, Any]:
    run = snap.run
    result = None
    if run.status is RunStatus.SUCCEEDED and run.result_uri:
        result = decode(rt.blobs.get(run.result_uri), run.result_uri)
    plan = rt.plan(run.flow_version, run.params)
    keys = list(plan.tasks) if order is None else task_order(order, list(plan.tasks))
    tasks = {
        k: snap.tasks.get(k)
        or TaskRun(
            run_id=run.run_id,
            key=k,
            node=plan.tasks[k].node.key,
            name=plan.tasks[k].node.options.name,
        )
        for k in keys
    }
    out = summary(run, tasks, result, task_order=keys)
    out["result_uri"] = run.result_uri
    if detail:
        out.update(
            created_at=run.created_at.isoformat(),
            flow_version=run.flow_version,
            started_at=run.started_at and run.started_at.isoformat(),
            ended_at=run.ended_at and run.ended_at.isoformat(),
            trigger=run.trigger.model_dump(mode="json"),
            params=run.params,
        )
        for row in out["tasks"]:
            task = tasks[row["key"]]
            row["result_uri"] = task.result_uri
            row["history"] = [a.model_dump(mode="json", exclude_none=True) for a in task.attempts]
    return out


def list_runs(flow: str | None, limit: int) -> list[dict[str, Any]]:
    _, store = cloud_runtime()
    return [
        {
            "run_id": r.run_id,
            "flow": r.flow,
            "status": r.status.value.lower(),
            "created_at": r.created_at.isoformat(),
            "ended_at": r.ended_at and r.ended_at.isoformat(),
            "flow_version": r.flow_version,
            "trigger": r.trigger.model_dump(mode="json"),
            "result_uri": r.result_uri,
        }
        for r in store.list_runs(flow, limit)
    ]


def show_run(run_id: str) -> dict[str, Any]:
    rt, _ = cloud_runtime()
    snap = rt.state.load(run_id)
    if snap is None:
        raise NotFoundError(f"no run {run_id!r}; list runs with `kumoflow runs list`")
    return describe(rt, snap, detail=True)


def cancel_run(run_id: str, reason: str) -> dict[str, Any]:
    """Cancel through the engine, as the orchestrator would: what runs finishes unobserved."""
    from orchestrator._advance import advance
    from orchestrator._engine import CancelRun

    rt, _ = cloud_runtime()
    if rt.state.load(run_id) is None:
        raise NotFoundError(f"no run {run_id!r}; list runs with `kumoflow runs list`")
    advance(rt, run_id, CancelRun(reason))
    snap = rt.state.load(run_id)
    assert snap is not None
    return describe(rt, snap, detail=True)


def dead_letters(limit: int) -> list[dict[str, Any]]:
    _, store = cloud_runtime()
    return [d.model_dump(mode="json") for d in store.list(limit)]
