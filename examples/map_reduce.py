"""A map with a fan-in: one task per item, then one task that sees every result."""

from __future__ import annotations

from orchestrator import flow, task, unmapped


@task(name="scale", retries=2, retry_delay_seconds=1)
def scale(x: int, factor: int) -> int:
    return x * factor


@task(name="add-all")
def add_all(values: list[int]) -> int:
    return sum(values)


@flow(name="map-reduce")
def map_reduce(items: list[int], factor: int = 2) -> int:
    scaled = scale.map(items, factor=unmapped(factor))
    return add_all(scaled)
