"""kumoflow: Prefect-style flows and tasks, run in-process or as Pub/Sub-triggered functions."""

from orchestrator._compile import unmapped
from orchestrator._errors import (
    BadInputError,
    ConflictError,
    FlowDefinitionError,
    FlowRunError,
    KumoflowError,
    NotFoundError,
    ParameterError,
    SerializationError,
    TaskRunError,
    TransientError,
)
from orchestrator._runner import InProcessRunner, RunOutcome, run_in_process
from orchestrator._sdk import Flow, Task, exponential_backoff, flow, task

__all__ = [
    "BadInputError",
    "ConflictError",
    "Flow",
    "FlowDefinitionError",
    "FlowRunError",
    "InProcessRunner",
    "KumoflowError",
    "NotFoundError",
    "ParameterError",
    "RunOutcome",
    "SerializationError",
    "Task",
    "TaskRunError",
    "TransientError",
    "exponential_backoff",
    "flow",
    "run_in_process",
    "task",
    "unmapped",
]
