"""How the functions are wired to topics: declared once, applied to the emulator here and to
Google Cloud by Terraform (`infra/wiring.json` is generated from this module by
`orchestrator.cloud.wiring()`; a test keeps the two equal)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.runtime import TOPICS

# Handlers acknowledge bad input themselves (recorded as dead letters), so only repeated
# transient failures reach Pub/Sub's dead-letter topic: allow the maximum before giving up,
# or an outage of a few minutes would drop completion events and strand their runs.
MAX_DELIVERY_ATTEMPTS = 100
MIN_BACKOFF_S = 1
MAX_BACKOFF_S = 10
# Push deliveries wait for the handler: the longest a task attempt may hold a message. The
# worker bounds attempts by KUMOFLOW_FUNCTION_TIMEOUT_S (540 s) below it, and renews a 60 s
# lease while user code runs, so no lease outlives the push.
TASK_ACK_DEADLINE_S = 600
TASK_TIMEOUT_S = 540


@dataclass(frozen=True)
class FunctionWiring:
    name: str  # functions-framework target in functions/main.py
    topic: str
    ack_deadline_s: int
    local_port_offset: int
    # Topics this function publishes to (Terraform grants it publisher on exactly these).
    publishes: tuple[str, ...] = ()
    # Its access to the results bucket: "create" (write-once results, and read them),
    # "update" (also overwrite: cache entries), or "none".
    results: str = "create"
    # Pub/Sub's dead-letter policy; off only for the sink of the dead-letter topic itself.
    dead_letter: bool = True
    timeout_s: int = 60

    @property
    def subscription(self) -> str:
        return f"kumoflow-{self.name.replace('_', '-')}"


# What the four engine functions publish: each may dispatch tasks and end a run, and a run's end
# may be a completion too (a subflow's end is its parent node's). The task worker starts runs as
# well: a subflow node's child. A run's end (or start) may hand a run slot of a flow with
# max_active_runs to a run waiting for one: its start is sent again, a run request.
ADVANCES = (TOPICS.tasks, TOPICS.events, TOPICS.finished, TOPICS.runs)

FUNCTIONS: tuple[FunctionWiring, ...] = (
    # Starts runs: dispatches roots, finishes runs that need no task (result written).
    FunctionWiring("run_starter", TOPICS.runs, 60, 0, ADVANCES),
    FunctionWiring(
        "task_worker",
        TOPICS.tasks,
        TASK_ACK_DEADLINE_S,
        1,
        ADVANCES,
        results="update",
        timeout_s=TASK_TIMEOUT_S,
    ),
    FunctionWiring("orchestrator", TOPICS.events, 60, 2, ADVANCES),
    # Fires retry timers and timeouts, fails expired leases, re-derives stranded runs, and
    # completes deferred tasks whose check found them done.
    FunctionWiring("sweeper", TOPICS.ticks, 60, 3, ADVANCES),
    # Records what Pub/Sub gave up delivering as a dead letter (`kumoflow dlq list`).
    FunctionWiring(
        "dead_letter_sink", TOPICS.dead_letter, 60, 4, results="none", dead_letter=False
    ),
)

# The run starter's subscriptions on trigger topics (schedules, GCS notifications, on_pubsub).
TRIGGER_SUBSCRIPTION_PREFIX = "kumoflow-trigger-"
# Timers' own pushes: one Cloud Tasks queue whose tasks reach the sweeper (infra/tasks.tf).
TIMER_QUEUE = "kumoflow-timers"
# The sweeper's tick: a Scheduler job publishing to TOPICS.ticks (every minute in the cloud).
TICK_JOB = "kumoflow-timer-tick"
TICK_DATA = "tick"
# What every schedule's job publishes (its attributes name the job; params come from the flow).
SCHEDULE_DATA = "{}"


def trigger_subscription(topic: str) -> str:
    return f"{TRIGGER_SUBSCRIPTION_PREFIX}{topic}"
