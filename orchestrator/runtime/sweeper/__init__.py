"""The sweeper: timers that came due, effects a crashed handler left, attempts whose worker
stopped renewing its lease, queued attempts nobody claimed. It drives both sides through their
faces, each item on its own deadline."""

from orchestrator.runtime.sweeper._sweep import (
    EARLY_WAIT,
    EVENTS_EVERY,
    ITEM_BUDGET_S,
    TICK_BUDGET_S,
    Fired,
    TickTime,
    expire_leases,
    fire_timer,
    sweep,
    tick,
)

__all__ = [
    "EARLY_WAIT",
    "EVENTS_EVERY",
    "ITEM_BUDGET_S",
    "TICK_BUDGET_S",
    "Fired",
    "TickTime",
    "expire_leases",
    "fire_timer",
    "sweep",
    "tick",
]
