"""Starting a run: create it once per run id, move it to RUNNING and dispatch its roots."""

from __future__ import annotations

from orchestrator.contracts import FlowSpec, ParentRef, Run, RunRequested, RunStatus
from orchestrator.engine import Plan, Reconcile, started
from orchestrator.errors import NotFoundError, ParameterError
from orchestrator.ports import Commit
from orchestrator.runtime._params import bind_params, check_types, secret_params
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime._slots import take_run_slot
from orchestrator.runtime.control._outbox import CHUNK, entry, execute, request
from orchestrator.runtime.control._whole import advance_whole


def start_run(
    rt: Runtime, req: RunRequested, *, run_id: str, parent: ParentRef | None = None
) -> tuple[Run, bool]:
    """Create the run (once per run id) and dispatch its roots. Returns (run, created). A
    subflow's run names its `parent` node attempt (set by the parent's worker, never off the
    wire)."""
    version, spec = requested_spec(rt, req)
    params = bind_params(spec.params, req.params, flow=spec.name)
    check_types(rt.flow_function(spec), params, flow=spec.name, secret=secret_params(spec))
    rt.plan(version, params)  # expanding validates mapped parameters before anything is stored
    run = Run(
        run_id=run_id,
        flow=spec.name,
        flow_version=version,
        params=params,
        created_at=rt.clock.now(),
        trigger=req.trigger,
        parent=parent,
        priority=req.priority,
    )
    created = rt.state.create_run(run)
    if not created:
        snap = rt.state.load(run_id, [])
        if snap is None:
            raise NotFoundError(f"run {run_id!r} vanished while starting")
        run = snap.run
    # Also on a duplicate: finishes a start that crashed after create_run.
    begin(rt, run_id)
    return run, created


def requested_spec(rt: Runtime, req: RunRequested) -> tuple[str, FlowSpec]:
    """The version and spec a run request names (its flow's latest when it names none)."""
    version = req.flow_version or rt.flows.latest_version(req.flow)
    if version is None:
        raise NotFoundError(f"flow {req.flow!r} is not registered; deploy it first")
    spec = rt.spec(version)
    if spec.name != req.flow:
        raise ParameterError(f"version {version} is flow {spec.name!r}, not {req.flow!r}")
    return version, spec


def begin(rt: Runtime, run_id: str) -> None:
    """Move the run to RUNNING, then dispatch its roots chunk by chunk (their claims create
    their records). Repeating this (a duplicate trigger after a crash midway) sends them again;
    nothing runs twice."""

    def attempt() -> Plan:
        snap = rt.state.load(run_id, [])
        if snap is None:
            raise NotFoundError(f"no run {run_id!r}")
        plan = rt.plan_of(snap.run)
        now = rt.clock.now()
        run, commands = started(plan, snap.run, now)
        if run is snap.run:
            return plan  # running (or ended) already
        if not take_run_slot(rt, snap.run, plan.spec):
            return plan  # PENDING, in line for a run slot of its flow: a freed one wakes it
        entries = [entry(run_id, c, now) for c in commands]
        rt.state.commit(Commit(run_id=run_id, run=run, run_etag=snap.run_etag, outbox_add=entries))
        if rt.fault is not None:
            rt.fault("after-commit")
        execute(rt, plan, run, entries, now)
        return plan

    plan = retried(attempt, what=f"run {run_id}: starting")
    snap = rt.state.load(run_id, [])
    if snap is None or snap.run.status is not RunStatus.RUNNING or snap.run.attempt != 1:
        return  # finished, cancelled, or a flow retry (which queued its own roots)
    if not plan.tasks:
        advance_whole(rt, run_id, Reconcile())  # nothing to run: it finishes at once
        return
    # Roots are dispatched without records: each one's claim creates it (one write per root
    # instead of two). Repeating this re-sends them all; a duplicate claim finds the record.
    # A dispatch lost for good is re-queued by the hourly whole-run recheck.
    for i in range(0, len(plan.roots), CHUNK):
        request(rt, snap.run, [(key, 1) for key in plan.roots[i : i + CHUNK]])
