"""How the functions are wired to topics: declared once, applied to the emulator here and to
Google Cloud by Terraform (the same names, retry policy and dead-letter policy)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.runtime import TOPICS

# Handlers acknowledge bad input themselves (recorded as dead letters), so only repeated
# transient failures reach Pub/Sub's dead-letter topic: allow the maximum before giving up,
# or an outage of a few minutes would drop completion events and strand their runs.
MAX_DELIVERY_ATTEMPTS = 100
MIN_BACKOFF_S = 1
MAX_BACKOFF_S = 10


@dataclass(frozen=True)
class FunctionWiring:
    name: str  # functions-framework target in functions/main.py
    topic: str
    ack_deadline_s: int
    local_port_offset: int

    @property
    def subscription(self) -> str:
        return f"kumoflow-{self.name.replace('_', '-')}"


FUNCTIONS: tuple[FunctionWiring, ...] = (
    FunctionWiring("run_starter", TOPICS.runs, 60, 0),
    # Push deliveries wait for the handler: the longest a task attempt may hold a message.
    FunctionWiring("task_worker", TOPICS.tasks, 600, 1),
    FunctionWiring("orchestrator", TOPICS.events, 60, 2),
    FunctionWiring("sweeper", TOPICS.ticks, 60, 3),
)
