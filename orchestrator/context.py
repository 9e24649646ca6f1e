"""The run a task's code is part of, as Prefect's `prefect.runtime` modules give it:

    from orchestrator.context import flow_run, task_run

    @task
    def report() -> str:
        return f"{flow_run.flow_name} {flow_run.id}: {task_run.name} attempt {task_run.run_count}"

`flow_run` and `task_run` are read when an attribute is, so one import at the top of a module
serves every attempt. `from orchestrator import context` then `context.task_run` is the same
object. Outside a run both are falsy and their fields read None (`parameters` empty,
`run_count` 0); in a flow body (compiled once, before any run exists) reading them is refused.
`.get()` gives the current run's frozen record (FlowRunInfo / TaskRunInfo), or None.
"""

from __future__ import annotations

from orchestrator.runtime import (
    FlowRunInfo,
    FlowRunView,
    TaskRunInfo,
    TaskRunView,
    flow_run,
    task_run,
)

__all__ = ["FlowRunInfo", "FlowRunView", "TaskRunInfo", "TaskRunView", "flow_run", "task_run"]
