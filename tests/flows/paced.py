"""A map under a rate limit (`rate="e2e-paced:10/s"`): its items start no faster than the rate
lets them, and every one runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestrator import flow, task
from orchestrator.contracts import TaskRun, parse_rate

RATE = parse_rate("e2e-paced:10/s")


@task(name="paced-item", rate=RATE)
def paced_item(i: int) -> int:
    return i


@task(name="paced-total")
def paced_total(values: list[int]) -> int:
    return sum(values)


@flow(name="paced-map")
def paced_map(items: list[int]) -> int:
    return paced_total(paced_item.map(items))


def starts(tasks: list[TaskRun]) -> list[datetime]:
    """Every attempt's start (its claim's time), in order."""
    return sorted(a.started_at for t in tasks for a in t.attempts if a.started_at is not None)


def most_in_a_window(times: list[datetime], period: timedelta) -> int:
    """The most of `times` (sorted) in any half-open window [t, t + period)."""
    return max(
        (sum(1 for u in times[i:] if u < t + period) for i, t in enumerate(times)), default=0
    )


SLOW = parse_rate("e2e-slow:4/s")  # well under what the stack starts unlimited (~10/s here)


@task(name="slow-item", rate=SLOW)
def slow_item(i: int) -> int:
    return i


@flow(name="slow-map")
def slow_map(items: list[int]) -> int:
    return paced_total(slow_item.map(items))


@task(name="unpaced-item")
def unpaced_item(i: int) -> int:
    return i


@flow(name="unpaced-map")
def unpaced_map(items: list[int]) -> int:
    """The same map without a rate: the baseline a benchmark measures beside it."""
    return paced_total(unpaced_item.map(items))


def sustained(times: list[datetime], period: timedelta) -> float:
    """Starts per second from one period after the first start on (past the first window's
    burst: what a key kept busy runs at); NaN when too few start then."""
    later = [t for t in times if t >= times[0] + period] if times else []
    if len(later) < 2:
        return float("nan")
    return (len(later) - 1) / (later[-1] - later[0]).total_seconds()
