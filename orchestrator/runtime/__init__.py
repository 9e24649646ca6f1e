"""The services the functions call: start a run, advance it, run a task attempt, sweep timers;
and the in-process runner that wires the same services to in-memory adapters.

Three roles, each a subpackage with a face: `worker` (runs task attempts), `control` (starts
and advances runs), `sweeper` (timers and rescues, driving both). Worker and control never
import each other (tests/test_layout.py): what both need is here, shared (the runtime's ports
and caches, a completion's one path, parameters, triggers, the run context).

`functions/` imports this face only; nothing here knows about HTTP or Pub/Sub push.
"""

from orchestrator.runtime._build import cloud_runtime, memory_runtime
from orchestrator.runtime._builtins import CHOOSE, SELECT, choose, select
from orchestrator.runtime._code import (
    BUILD_FILES,
    code_digest,
    code_files,
    module_digest,
    source_digest,
    tree_files,
)
from orchestrator.runtime._completion import error_info
from orchestrator.runtime._context import (
    FlowRunInfo,
    FlowRunView,
    RunLogger,
    TaskRunInfo,
    TaskRunView,
    compiling,
    flow_run,
    get_run_logger,
    in_flow_body,
    task_run,
)
from orchestrator.runtime._ingress import (
    FLOW_ATTRIBUTE,
    JOB_ATTRIBUTE,
    Deployed,
    Refused,
    for_flow,
    gcs_object,
    job_name,
    message,
    requested_run_id,
    requests_for_fire,
    requests_for_message,
    requests_for_object,
    scheduled_slot,
)
from orchestrator.runtime._logging import LOGGER, JsonFormatter, configure_json_logging, run_trace
from orchestrator.runtime._params import (
    MASK,
    bind_params,
    check_types,
    looks_secret,
    masked,
    refuse_blocks,
    secret_params,
    shown_params,
)
from orchestrator.runtime._runner import DEFAULT_WORKERS, InProcessRunner, Progress, RunOutcome
from orchestrator.runtime._runtime import LEASE_S, Resolver, Runtime, import_source
from orchestrator.runtime._slots import set_limit, waiting_for
from orchestrator.runtime._topics import TOPICS, Topics
from orchestrator.runtime._tracebacks import UserTrace, user_traceback
from orchestrator.runtime.control import (
    MANIFEST,
    MANIFEST_ENV,
    advance,
    begin,
    bundled_specs,
    flow_result,
    read_flow_result,
    register_bundled,
    request,
    requested_spec,
    start_run,
)
from orchestrator.runtime.sweeper import (
    ITEM_BUDGET_S,
    TICK_BUDGET_S,
    TickTime,
    expire_leases,
    sweep,
    tick,
)
from orchestrator.runtime.worker import (
    MAX_LINE_CHARS,
    MAX_LOG_CHARS,
    MAX_POLL_S,
    OUTAGE_BUDGET,
    Capture,
    Deferred,
    TaskRunContext,
    deferrable,
    hooks_of,
    run_task,
    task_input_hash,
)
from orchestrator.runtime.worker import parse as parse_logs

__all__ = [
    "BUILD_FILES",
    "CHOOSE",
    "DEFAULT_WORKERS",
    "FLOW_ATTRIBUTE",
    "ITEM_BUDGET_S",
    "JOB_ATTRIBUTE",
    "LEASE_S",
    "LOGGER",
    "MANIFEST",
    "MANIFEST_ENV",
    "MASK",
    "MAX_LINE_CHARS",
    "MAX_LOG_CHARS",
    "MAX_POLL_S",
    "OUTAGE_BUDGET",
    "SELECT",
    "TICK_BUDGET_S",
    "TOPICS",
    "Capture",
    "Deferred",
    "Deployed",
    "FlowRunInfo",
    "FlowRunView",
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
    "TaskRunView",
    "TickTime",
    "Topics",
    "UserTrace",
    "advance",
    "begin",
    "bind_params",
    "bundled_specs",
    "check_types",
    "choose",
    "cloud_runtime",
    "code_digest",
    "code_files",
    "compiling",
    "configure_json_logging",
    "deferrable",
    "error_info",
    "expire_leases",
    "flow_result",
    "flow_run",
    "for_flow",
    "gcs_object",
    "get_run_logger",
    "hooks_of",
    "import_source",
    "in_flow_body",
    "job_name",
    "looks_secret",
    "masked",
    "memory_runtime",
    "message",
    "module_digest",
    "parse_logs",
    "read_flow_result",
    "refuse_blocks",
    "register_bundled",
    "request",
    "requested_run_id",
    "requested_spec",
    "requests_for_fire",
    "requests_for_message",
    "requests_for_object",
    "run_task",
    "run_trace",
    "scheduled_slot",
    "secret_params",
    "select",
    "set_limit",
    "shown_params",
    "source_digest",
    "start_run",
    "sweep",
    "task_input_hash",
    "task_run",
    "tick",
    "tree_files",
    "user_traceback",
    "waiting_for",
]
