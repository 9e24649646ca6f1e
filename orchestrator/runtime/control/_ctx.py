"""A run as one control handler sees it: its plan, the run document it read and its etag."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.contracts import Run, RunStatus
from orchestrator.engine import Plan
from orchestrator.ports import Etag
from orchestrator.runtime._runtime import Runtime


@dataclass
class Ctx:
    rt: Runtime
    plan: Plan
    run: Run
    run_etag: Etag


def current(ctx: Ctx) -> bool:
    """Read the run afresh (a recovery, a finish that lost a race): True while it still runs
    the same flow attempt."""
    attempt = ctx.run.attempt
    snap = ctx.rt.state.load(ctx.run.run_id, [])
    ctx.rt.remember(ctx.run.run_id, snap)
    if snap is None:
        return False
    ctx.run, ctx.run_etag = snap.run, snap.run_etag
    return snap.run.status is RunStatus.RUNNING and snap.run.attempt == attempt
