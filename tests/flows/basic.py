"""Flows the tests run on every backend. Counters live in files so they work across processes."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path

from orchestrator import flow, task, task_input_hash, unmapped


def bump(counter: str) -> int:
    """Count a call in a file (atomic enough: one test process, appends are small)."""
    with open(counter, "a") as f:
        f.write("x")
    return Path(counter).stat().st_size


@task(name="flaky", retries=2, retry_delay_seconds=[1, 2])
def flaky(counter: str, failures: int) -> str:
    n = bump(counter)
    if n <= failures:
        raise RuntimeError(f"flaky failure {n}")
    return f"ok after {n}"


@task(name="after")
def after(value: str, counter: str) -> str:
    bump(counter)
    return value.upper()


@flow(name="retrying")
def retrying(counter: str, failures: int, after_counter: str) -> str:
    return after(flaky(counter, failures), after_counter)


@task(name="flaky-slowly", retries=2, retry_delay_seconds=[30, 30])
def flaky_slowly(counter: str, failures: int) -> str:
    return flaky.fn(counter, failures)


@flow(name="retrying-slowly")
def retrying_slowly(counter: str, failures: int, after_counter: str) -> str:
    """Still running half a minute after its start, whatever the machine's load."""
    return after(flaky_slowly(counter, failures), after_counter)


@task(name="flaky-once-only", retries=1, retry_delay_seconds=[1, 2])
def flaky_once_only(counter: str, failures: int) -> str:
    return flaky.fn(counter, failures)


@flow(name="retrying-short")
def retrying_short(counter: str, failures: int, after_counter: str) -> str:
    return after(flaky_once_only(counter, failures), after_counter)


@task(name="double")
def double(x: int) -> int:
    return 2 * x


@task(name="sleepy-async")
async def sleepy_async(x: int) -> int:
    await asyncio.sleep(0.01)
    return x + 1


@task(name="sum")
def total(values: list[int]) -> int:
    return sum(values)


@flow(name="async-and-map")
def async_and_map(items: list[int]) -> dict[str, object]:
    doubled = double.map(items)
    return {"sum": total(doubled), "async": sleepy_async(total(doubled))}


@task(name="inc")
def inc(x: int) -> int:
    return x + 1


def _chain(length: int, start: int) -> int:
    value = inc(start)
    for _ in range(length - 1):  # the shape is fixed at definition time, not by a parameter
        value = inc(value)
    return value


@flow(name="chain-1000")
def chain_1000(start: int = 0) -> int:
    return _chain(1000, start)


@flow(name="chain-50")
def chain_50(start: int = 0) -> int:
    return _chain(50, start)


@task(name="scale")
def scale(x: int, factor: int) -> int:
    return x * factor


@flow(name="wide-map")
def wide_map(items: list[int], factor: int = 3) -> int:
    return total(scale.map(items, factor=unmapped(factor)))


@task(name="not-json")
def not_json() -> object:
    return {1, 2, 3}


@flow(name="returns-a-set")
def returns_a_set() -> object:
    return not_json()


@task(name="as-pickle", result_serializer="pickle")
def as_pickle() -> object:
    return {1, 2, 3}


@task(name="count-items")
def count_items(values: object) -> int:
    return len(values)  # type: ignore[arg-type]


@flow(name="pickled")
def pickled() -> int:
    return count_items(as_pickle())


@task(name="slow", timeout_seconds=0.2)
def slow() -> str:
    time.sleep(2)
    return "late"


@flow(name="times-out")
def times_out() -> str:
    return slow()


@task(name="own-timeout", timeout_seconds=5)
def own_timeout() -> str:
    raise TimeoutError("the database gave up")


@flow(name="raises-its-own-timeout")
def raises_its_own_timeout() -> str:
    return own_timeout()


@task(name="hangs", timeout_seconds=0.2)
def hangs() -> str:
    threading.Event().wait()  # forever: the attempt's thread is abandoned
    return "never"


@flow(name="hangs-flow")
def hangs_flow() -> str:
    return hangs()


_THREAD = threading.local()
_THREADS = itertools.count()


@task(name="thread-of")
def thread_of(seen: list[int]) -> list[int]:
    """Which thread ran this call: a number each thread gets the first time it runs one."""
    if not hasattr(_THREAD, "n"):
        _THREAD.n = next(_THREADS)
    return [*seen, _THREAD.n]


@flow(name="threads-of-a-chain")
def threads_of_a_chain() -> list[int]:
    seen = thread_of([])
    for _ in range(19):
        seen = thread_of(seen)
    return seen


@task(name="picky", retries=3, retry_on=(ConnectionError,))
def picky(kind: str) -> str:
    raise (ConnectionError if kind == "conn" else ValueError)(kind)


@flow(name="picky-flow")
def picky_flow(kind: str) -> str:
    return picky(kind)


@task(name="cached-square", cache_key_fn=task_input_hash, cache_expiration=60)
def cached_square(x: int, counter: str) -> int:
    bump(counter)
    return x * x


@flow(name="cached")
def cached(x: int, counter: str) -> int:
    return cached_square(x, counter)
