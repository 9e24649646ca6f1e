"""Flows whose tasks print, log and fail on purpose: task logs, run retries, the dashboard."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from orchestrator import flow, get_run_logger, task, unmapped


@task(name="count")
def count(n: int, counter: str) -> int:
    """Notes each call in `counter`: a retried run must not call it again."""
    with Path(counter).open("a") as f:
        f.write(f"{n}\n")
    return n * 2


@task(name="chatty")
def chatty(n: int) -> int:
    print("printed", n)
    print("on stderr", file=sys.stderr)
    get_run_logger().info("logged %d", n)
    logging.getLogger("user.module").warning("a user warning")
    return n + 1


@task(name="picky")
def picky(n: int, marker: str) -> int:
    """Fails until `marker` exists: fix the cause, then retry the run."""
    print("picky got", n)
    if not Path(marker).exists():
        raise ValueError(f"no marker at {marker}")
    return n * 10


@task(name="after")
def after(n: int) -> int:
    return n + 1


@flow(name="observed")
def observed(n: int, counter: str, marker: str) -> int:
    return after(picky(chatty(count(n, counter)), marker))


@task(name="noisy")
def noisy(lines: int) -> int:
    for i in range(lines):
        print(f"line {i:06d} " + "x" * 90)
    return lines


@flow(name="noisy")
def noisy_flow(lines: int) -> int:
    return noisy(lines)


@task(name="square")
def square(x: int) -> int:
    return x * x


@task(name="fail-on")
def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise RuntimeError(f"{x} is bad")
    return x


@task(name="total")
def total(values: list[int]) -> int:
    return sum(values)


@flow(name="wide")
def wide(items: list[int], bad: int = -1) -> int:
    checked = fail_on.map(items, bad=unmapped(bad))
    return total(square.map(checked))
