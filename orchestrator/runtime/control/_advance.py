"""The orchestrator's entry: route an event to the path that costs what it should.

Completions (and expired leases) take the per-task path, O(the task's degree); starting a run
queues its roots in chunks; cancelling and run timeouts take the whole-run path once per run.
"""

from __future__ import annotations

from orchestrator.contracts import TaskFailed, TaskSucceeded
from orchestrator.engine import Event, LeaseExpired, Reconcile, ResumeRun, StartRun
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime._slots import resumable
from orchestrator.runtime.control._complete import complete_task
from orchestrator.runtime.control._settle import rescue_maps
from orchestrator.runtime.control._start import begin
from orchestrator.runtime.control._whole import advance_whole


def advance(rt: Runtime, run_id: str, event: Event) -> bool:
    """Apply `event` to run `run_id`; True when it changed something."""
    if isinstance(event, TaskSucceeded | TaskFailed | LeaseExpired):
        return complete_task(rt, run_id, event)
    if isinstance(event, StartRun):
        begin(rt, run_id)
        return True
    if isinstance(event, ResumeRun) and not resumable(rt, run_id, event.attempt):
        return False  # its flow's run slots are all taken (max_active_runs)
    tr = advance_whole(rt, run_id, event)
    if isinstance(event, Reconcile | ResumeRun) and rt.plan_of(tr.state.run).dynamic:
        rescue_maps(rt, run_id)
    return bool(tr.changed or tr.run_changed)
