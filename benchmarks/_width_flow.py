"""The flow benchmarks.width runs: a map of N trivial tasks and a fan-in that sums them.

Module-level, so the stack's task_worker imports it by name (the run's SourceRef carries
`benchmarks._width_flow` and this file's path; the worker puts the repo root on sys.path)."""

from __future__ import annotations

from orchestrator import flow, task


@task(name="bench-ident")
def ident(x: int) -> int:
    return x


@task(name="bench-total")
def total(values: list[int]) -> int:
    return sum(values)


@task(name="bench-items")
def make_items(width: int) -> list[int]:
    return list(range(width))


LIMIT_KEY = "bench-limited"  # benchmarks.limits sets its limit before each run


@task(name="bench-limited-ident", concurrency=LIMIT_KEY)
def limited_ident(x: int) -> int:
    return x


@flow(name="bench-width")
def width_map(items: list[int]) -> int:
    return total(ident.map(items))


@flow(name="bench-limited-width")
def limited_map(items: list[int]) -> int:
    return total(limited_ident.map(items))  # the same map, each item under LIMIT_KEY


@flow(name="bench-run-time-width")
def run_time_map(width: int) -> int:
    return total(ident.map(make_items(width)))  # the list exists only once make_items ran


@task(name="bench-padded")
def padded(width: int, size: int) -> list[str]:
    return [f"{i:08d}".ljust(size, "x") for i in range(width)]


@task(name="bench-length")
def length(item: str) -> int:
    return len(item)


@flow(name="bench-map-reads")
def map_reads(width: int, size: int = 200) -> int:
    return total(length.map(padded(width, size)))  # each child reads one ~size-byte element
