"""The pure engine: a run's plan, its transition rules, and the value expressions tasks read.

No I/O and no clock reads: `transition(plan, state, event, now)` returns the new state and the
commands to carry out; the runtime does the rest.
"""

from orchestrator.engine._plan import Plan, PlannedTask, expand, result_refs
from orchestrator.engine._transition import (
    RUN_TRANSITIONS,
    TASK_TRANSITIONS,
    IllegalTransition,
    claim,
    retry_delay,
    transition,
)
from orchestrator.engine._types import (
    CancelRun,
    Command,
    Dispatch,
    Event,
    FinishRun,
    Reconcile,
    RunState,
    StartRun,
    Transition,
    WakeAt,
)
from orchestrator.engine._values import (
    JSON_TYPE,
    PICKLE_TYPE,
    check_json,
    decode,
    encode,
    param_value,
    resolve,
)

__all__ = [
    "JSON_TYPE",
    "PICKLE_TYPE",
    "RUN_TRANSITIONS",
    "TASK_TRANSITIONS",
    "CancelRun",
    "Command",
    "Dispatch",
    "Event",
    "FinishRun",
    "IllegalTransition",
    "Plan",
    "PlannedTask",
    "Reconcile",
    "RunState",
    "StartRun",
    "Transition",
    "WakeAt",
    "check_json",
    "claim",
    "decode",
    "encode",
    "expand",
    "param_value",
    "resolve",
    "result_refs",
    "retry_delay",
    "transition",
]
