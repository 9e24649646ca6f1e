"""Flows for the interleaving harness (tests/runtime/test_interleavings.py).

Each task body reports its execution, under one process-wide lock, to the recorder the harness
sets around each worker call (`CURRENT`: which run, task key and attempt the call runs), then
fails its first `fails[name]` attempts on purpose. The harness keeps the counts per example
(run ids repeat across examples). The plain logic (`plus_one`, ...) is shared with `expected`,
which computes what a run must end with without running anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from orchestrator import flow, task, unmapped

RETRIES = 1  # every task: a task failing more than once fails its run
RETRY_DELAY_S = 5.0


@dataclass(frozen=True)
class Caller:
    """Set by the harness around one worker call: who runs which requested attempt."""

    run_id: str
    key: str
    attempt: int
    instance: int
    # Called from the task body, before it decides anything: records the execution.
    record: Callable[[Caller, str], None]


CURRENT: ContextVar[Caller | None] = ContextVar("interleaved_caller", default=None)
LOCK = threading.Lock()


class PlannedFailure(RuntimeError):
    pass


def _ran(name: str, fails: dict[str, int]) -> None:
    caller = CURRENT.get()
    if caller is None:
        raise AssertionError(f"task {name!r} ran outside the harness")
    with LOCK:
        caller.record(caller, name)
    if caller.attempt <= fails.get(name, 0):
        raise PlannedFailure(f"planned failure of {name} attempt {caller.attempt}")


# --- plain logic, shared with `expected` -----------------------------------------------------


def plus_one(x: int) -> int:
    return x + 1


def doubled(v: int) -> int:
    return 2 * v


def plus_ten(v: int) -> int:
    return v + 10


def scaled(x: int, offset: int) -> int:
    return 3 * x + offset


# --- tasks ---------------------------------------------------------------------------------


@task(name="base", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def base(x: int, fails: dict[str, int]) -> int:
    _ran("base", fails)
    return plus_one(x)


@task(name="left", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def left(v: int, fails: dict[str, int]) -> int:
    _ran("left", fails)
    return doubled(v)


@task(name="right", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def right(v: int, fails: dict[str, int]) -> int:
    _ran("right", fails)
    return plus_ten(v)


@task(name="item", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def item(x: int, offset: int, fails: dict[str, int]) -> int:
    _ran(f"item:{x}", fails)
    return scaled(x, offset)


@task(name="gather", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def gather(values: list[int], fails: dict[str, int]) -> int:
    _ran("gather", fails)
    return sum(values)


@task(name="listed", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def listed(items: list[int], fails: dict[str, int]) -> dict[str, list[int]]:
    _ran("listed", fails)
    return {"items": list(items)}


# --- flows ---------------------------------------------------------------------------------


@flow(name="il-chain")
def chain(x: int, fails: dict[str, int]) -> int:
    return right(left(base(x, fails), fails), fails)


@flow(name="il-diamond")
def diamond(x: int, fails: dict[str, int]) -> int:
    b = base(x, fails)
    return gather([left(b, fails), right(b, fails)], fails)


@flow(name="il-map-fan-in")
def map_fan_in(x: int, items: list[int], fails: dict[str, int]) -> int:
    b = base(x, fails)
    return gather(item.map(items, offset=unmapped(b), fails=unmapped(fails)), fails)


@flow(name="il-two-sinks")
def two_sinks(x: int, items: list[int], fails: dict[str, int]) -> dict[str, Any]:
    b = base(x, fails)
    return {
        "left": left(b, fails),
        "right": right(b, fails),
        "items": item.map(items, offset=unmapped(b), fails=unmapped(fails)),
    }


@flow(name="il-returns-map")
def returns_map(items: list[int], fails: dict[str, int]) -> list[int]:
    return item.map(items, offset=unmapped(0), fails=unmapped(fails))


@flow(name="il-run-time-map")
def run_time_map(x: int, items: list[int], fails: dict[str, int]) -> int:
    b = base(x, fails)
    found = listed(items, fails)["items"]  # a list known only once `listed` ran
    return gather(item.map(found, offset=unmapped(b), fails=unmapped(fails)), fails)


@flow(name="il-returns-run-time-map")
def returns_run_time_map(items: list[int], fails: dict[str, int]) -> list[int]:
    return item.map(listed(items, fails)["items"], offset=unmapped(0), fails=unmapped(fails))


FLOWS = {
    f.name: f
    for f in (
        chain,
        diamond,
        map_fan_in,
        two_sinks,
        returns_map,
        run_time_map,
        returns_run_time_map,
    )
}


def names(flow_name: str, params: dict[str, Any]) -> list[str]:
    """The failure names (`fails` keys) of the tasks a run of `flow_name` plans."""
    items = [f"item:{x}" for x in params.get("items", [])]
    return {
        "il-chain": ["base", "left", "right"],
        "il-diamond": ["base", "left", "right", "gather"],
        "il-map-fan-in": ["base", *items, "gather"],
        "il-two-sinks": ["base", "left", "right", *items],
        "il-returns-map": items,
        "il-run-time-map": ["base", "listed", *items, "gather"],
        "il-returns-run-time-map": ["listed", *items],
    }[flow_name]


def expected(flow_name: str, params: dict[str, Any]) -> tuple[bool, Any]:
    """(succeeds, result): a run fails when any planned task fails more than it may retry."""
    fails: dict[str, int] = params["fails"]
    if any(fails.get(n, 0) > RETRIES for n in names(flow_name, params)):
        return False, None
    x, items = params.get("x", 0), params.get("items", [])
    b = plus_one(x)
    value: Any = {
        "il-chain": lambda: plus_ten(doubled(b)),
        "il-diamond": lambda: doubled(b) + plus_ten(b),
        "il-map-fan-in": lambda: sum(scaled(i, b) for i in items),
        "il-two-sinks": lambda: {
            "left": doubled(b),
            "right": plus_ten(b),
            "items": [scaled(i, b) for i in items],
        },
        "il-returns-map": lambda: [scaled(i, 0) for i in items],
        "il-run-time-map": lambda: sum(scaled(i, b) for i in items),
        "il-returns-run-time-map": lambda: [scaled(i, 0) for i in items],
    }[flow_name]()
    return True, value
