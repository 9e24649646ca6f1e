"""Flows that call flows: a child run per call (per element with `.map`)."""

from __future__ import annotations

import time
from typing import Any

from orchestrator import flow, task, unmapped


@task(name="add")
def add(x: int, y: int) -> int:
    return x + y


@task(name="double")
def double(x: int) -> int:
    return 2 * x


@task(name="boom")
def boom(x: int) -> int:
    raise ValueError(f"no {x} today")


@task(name="nap")
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@flow(name="child-sum")
def child_sum(a: int, b: int) -> int:
    return add(a, b)


@task(name="count-up")
def count_up(n: int) -> list[int]:
    return list(range(n))


@flow(name="child-lists")
def child_lists(n: int) -> list[int]:
    return count_up(n)


@flow(name="child-fails")
def child_fails(x: int) -> int:
    return boom(x)


@flow(name="child-naps")
def child_naps(seconds: float) -> float:
    return nap(seconds)


@flow(name="with-a-subflow")
def with_subflow(n: int) -> dict[str, Any]:
    total = child_sum(n, 1)
    return {"child": total, "doubled": double(total)}


@flow(name="map-over-a-subflow")
def map_subflow(xs: list[int]) -> list[int]:
    return child_sum.map(xs, unmapped(10))


@flow(name="subflow-fails")
def subflow_fails(x: int) -> int:
    return double(child_fails(x))


@flow(name="subflow-naps")
def subflow_naps(seconds: float) -> float:
    return child_naps(seconds)


@flow(name="map-over-a-child")
def map_over_a_child(n: int) -> list[int]:
    return double.map(child_lists(n))
