"""The services the functions call: start a run, advance it, run a task attempt, sweep timers;
and the in-process runner that wires the same services to in-memory adapters.

`functions/` imports this face only; nothing here knows about HTTP or Pub/Sub push.
"""

from orchestrator.runtime._advance import advance
from orchestrator.runtime._build import cloud_runtime, memory_runtime
from orchestrator.runtime._builtins import CHOOSE, SELECT, choose, select
from orchestrator.runtime._cache import TaskRunContext, task_input_hash
from orchestrator.runtime._capture import MAX_LINE_CHARS, MAX_LOG_CHARS, Capture
from orchestrator.runtime._capture import parse as parse_logs
from orchestrator.runtime._completion import error_info
from orchestrator.runtime._context import (
    Context,
    FlowRunInfo,
    RunLogger,
    TaskRunInfo,
    compiling,
    context,
    get_run_logger,
    in_flow_body,
)
from orchestrator.runtime._defer import MAX_POLL_S, OUTAGE_BUDGET, Deferred, deferrable
from orchestrator.runtime._ingress import (
    FLOW_ATTRIBUTE,
    JOB_ATTRIBUTE,
    Deployed,
    Refused,
    for_flow,
    gcs_object,
    job_name,
    message,
    requests_for_fire,
    requests_for_message,
    requests_for_object,
    scheduled_slot,
)
from orchestrator.runtime._logging import LOGGER, JsonFormatter, configure_json_logging, run_trace
from orchestrator.runtime._outbox import flow_result, read_flow_result, request
from orchestrator.runtime._runner import DEFAULT_WORKERS, InProcessRunner, Progress, RunOutcome
from orchestrator.runtime._runtime import LEASE_S, Resolver, Runtime, import_source
from orchestrator.runtime._start import (
    MASK,
    begin,
    bind_params,
    check_types,
    masked,
    refuse_blocks,
    requested_spec,
    secret_params,
    start_run,
)
from orchestrator.runtime._sweep import (
    ITEM_BUDGET_S,
    TICK_BUDGET_S,
    TickTime,
    expire_leases,
    sweep,
    tick,
)
from orchestrator.runtime._topics import TOPICS, Topics
from orchestrator.runtime._worker import run_task

__all__ = [
    "CHOOSE",
    "DEFAULT_WORKERS",
    "FLOW_ATTRIBUTE",
    "ITEM_BUDGET_S",
    "JOB_ATTRIBUTE",
    "LEASE_S",
    "LOGGER",
    "MASK",
    "MAX_LINE_CHARS",
    "MAX_LOG_CHARS",
    "MAX_POLL_S",
    "OUTAGE_BUDGET",
    "SELECT",
    "TICK_BUDGET_S",
    "TOPICS",
    "Capture",
    "Context",
    "Deferred",
    "Deployed",
    "FlowRunInfo",
    "InProcessRunner",
    "JsonFormatter",
    "Progress",
    "Refused",
    "Resolver",
    "RunLogger",
    "RunOutcome",
    "Runtime",
    "TaskRunContext",
    "TaskRunInfo",
    "TickTime",
    "Topics",
    "advance",
    "begin",
    "bind_params",
    "check_types",
    "choose",
    "cloud_runtime",
    "compiling",
    "configure_json_logging",
    "context",
    "deferrable",
    "error_info",
    "expire_leases",
    "flow_result",
    "for_flow",
    "gcs_object",
    "get_run_logger",
    "import_source",
    "in_flow_body",
    "job_name",
    "masked",
    "memory_runtime",
    "message",
    "parse_logs",
    "read_flow_result",
    "refuse_blocks",
    "request",
    "requested_spec",
    "requests_for_fire",
    "requests_for_message",
    "requests_for_object",
    "run_task",
    "run_trace",
    "scheduled_slot",
    "secret_params",
    "select",
    "start_run",
    "sweep",
    "task_input_hash",
    "tick",
]
