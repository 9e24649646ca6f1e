"""kumoflow: Prefect-style flows and tasks, run in-process or as Pub/Sub-triggered functions."""

from contracts import GcsObject, PubSubMessage
from orchestrator.errors import (
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
from orchestrator.runtime import InProcessRunner, RunOutcome, TaskRunContext, task_input_hash
from orchestrator.sdk import (
    Flow,
    Task,
    allow_failure,
    exponential_backoff,
    flow,
    on_gcs_finalize,
    on_pubsub,
    on_schedule,
    run_in_process,
    task,
    unmapped,
)

__all__ = [
    "BadInputError",
    "ConflictError",
    "Flow",
    "FlowDefinitionError",
    "FlowRunError",
    "GcsObject",
    "InProcessRunner",
    "KumoflowError",
    "NotFoundError",
    "ParameterError",
    "PubSubMessage",
    "RunOutcome",
    "SerializationError",
    "Task",
    "TaskRunContext",
    "TaskRunError",
    "TransientError",
    "allow_failure",
    "exponential_backoff",
    "flow",
    "on_gcs_finalize",
    "on_pubsub",
    "on_schedule",
    "run_in_process",
    "task",
    "task_input_hash",
    "unmapped",
]
