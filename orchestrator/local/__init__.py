"""The local stack: production's wiring (topics, push subscriptions, functions) applied to
Google's emulators, deploys to it, and a client for runs on it."""

from orchestrator.local._client import (
    cancel_run,
    follow,
    load_run,
    stack_runtime,
    submit,
)
from orchestrator.local._deploy import STARTER, deploy_local, flows_in, publish
from orchestrator.local._stack import (
    FUNCTIONS_SOURCE,
    RESULTS_BUCKET,
    DevStack,
    down,
    require_running,
    status,
    subscribe,
    up,
)
from orchestrator.local._wiring import (
    FUNCTIONS,
    MAX_BACKOFF_S,
    MAX_DELIVERY_ATTEMPTS,
    MIN_BACKOFF_S,
    SCHEDULE_DATA,
    TICK_DATA,
    TICK_JOB,
    TRIGGER_SUBSCRIPTION_PREFIX,
    FunctionWiring,
    trigger_subscription,
)

__all__ = [
    "FUNCTIONS",
    "FUNCTIONS_SOURCE",
    "MAX_BACKOFF_S",
    "MAX_DELIVERY_ATTEMPTS",
    "MIN_BACKOFF_S",
    "RESULTS_BUCKET",
    "SCHEDULE_DATA",
    "STARTER",
    "TICK_DATA",
    "TICK_JOB",
    "TRIGGER_SUBSCRIPTION_PREFIX",
    "DevStack",
    "FunctionWiring",
    "cancel_run",
    "deploy_local",
    "down",
    "flows_in",
    "follow",
    "load_run",
    "publish",
    "require_running",
    "stack_runtime",
    "status",
    "submit",
    "subscribe",
    "trigger_subscription",
    "up",
]
