"""The authoring surface: `@flow` / `@task`, compiling a flow body into a DAG, trigger
declarations, loading flows from files, and running a flow in-process."""

from orchestrator.sdk._branch import branch, switch
from orchestrator.sdk._compile import AllowFailure, Placeholder, Unmapped, allow_failure, unmapped
from orchestrator.sdk._decorators import Task, exponential_backoff, task
from orchestrator.sdk._flow import Flow, flow, run_in_process
from orchestrator.sdk._limits import Limits, merged_limits
from orchestrator.sdk._load import load_flow, load_module
from orchestrator.sdk._sync import sync_compatible
from orchestrator.sdk._triggers import Trigger, on_gcs_finalize, on_pubsub, on_schedule

__all__ = [
    "AllowFailure",
    "Flow",
    "Limits",
    "Placeholder",
    "Task",
    "Trigger",
    "Unmapped",
    "allow_failure",
    "branch",
    "exponential_backoff",
    "flow",
    "load_flow",
    "load_module",
    "merged_limits",
    "on_gcs_finalize",
    "on_pubsub",
    "on_schedule",
    "run_in_process",
    "switch",
    "sync_compatible",
    "task",
    "unmapped",
]
