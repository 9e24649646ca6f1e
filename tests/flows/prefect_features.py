"""One small flow per README row that says kumoflow does what Prefect does ("same"), written
as a Prefect user would write it. tests/e2e/test_prefect_table.py runs them on every backend."""

from __future__ import annotations

import asyncio
import time

from orchestrator import (
    allow_failure,
    exponential_backoff,
    flow,
    get_run_logger,
    task,
    task_input_hash,
    unmapped,
)
from orchestrator.context import task_run
from tests.flows.basic import bump
from tests.flows.methods import Scaler, Tools, exporter


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@flow
def decorators(x: int) -> int:
    return add(add(x), y=10)


@task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=0.1))
def flaky(counter: str) -> int:
    n = bump(counter)
    if n < 3:
        raise ConnectionError(f"failure {n}")
    return n


@flow
def retries(counter: str) -> int:
    return flaky(counter)


@flow
def futures(x: int) -> int:
    a = add.submit(x)
    b = add.submit(a.result(), y=add.submit(5).wait())  # type: ignore[attr-defined]
    return b.result()  # type: ignore[attr-defined, no-any-return]


@flow
def mapping(xs: list[int], y: int) -> list[int]:
    return add.map(xs, unmapped(y))


@task
def breaks(x: int) -> int:
    raise ValueError(f"broken {x}")


@task
def cleanup(value: int | None) -> str:
    return "cleaned up after a failure" if value is None else "nothing to clean"


@flow
def allowed_failure(x: int) -> str:
    return cleanup(allow_failure(breaks(x)))


@task
def record(counter: str, label: str) -> str:
    with open(counter, "a") as f:
        f.write(label)
    return label


@flow
def ordering(counter: str) -> str:
    first = record(counter, "a")
    return record(counter, "b", wait_for=[first])  # type: ignore[call-arg]


@task(cache_key_fn=task_input_hash, cache_expiration=60)
def expensive(x: int, counter: str) -> int:
    bump(counter)
    return x * x


@flow
def caching(x: int, counter: str) -> list[int]:
    first = expensive(x, counter)
    return [first, expensive(x, counter, wait_for=[first])]  # type: ignore[call-arg]


@task(timeout_seconds=0.3)
def too_slow() -> str:
    time.sleep(3)
    return "late"


@task
def describe_failure(value: str | None) -> str:
    return "timed out" if value is None else value


@flow
def timeouts() -> str:
    return describe_failure(allow_failure(too_slow()))


@flow
def options(x: int) -> int:
    return add.with_options(name="add-twice", retries=1)(x, y=2)


@task
async def async_add(x: int) -> int:
    await asyncio.sleep(0.01)
    return x + 1


@flow
def async_tasks(x: int) -> int:
    return async_add(x)  # type: ignore[return-value]


@flow
def methods(json_data: str, counter: str) -> dict[str, object]:
    return {
        "csv": exporter.create_csv_file(json_data, counter, 0),
        "scaled": Scaler(2).scale.map([1, 2]),
        "total": Tools.total([1, 2, 3]),
        "described": Tools.describe(1),  # type: ignore[call-arg, arg-type]
    }


@task
def logs(x: int) -> int:
    get_run_logger().info("working on %d", x)
    return x


@flow
def run_logger(x: int) -> int:
    return logs(x)


@task
def prints(x: int) -> int:
    print("working on", x)
    return x


@flow(log_prints=True)
def printing(x: int) -> int:
    return prints(x)


@task(retries=2, retry_delay_seconds=0)
def whoami(counter: str) -> dict[str, object]:
    assert task_run  # imported once at the top, as Prefect's; read per attempt
    if bump(counter) < 2:
        raise ConnectionError("once")
    return {"name": task_run.name, "run_count": task_run.run_count, **task_run.parameters}


@flow
def runtime_context(counter: str) -> dict[str, object]:
    return whoami(counter)


@task
def fails_the_first_flow_attempt(counter: str) -> int:
    n = bump(counter)
    if n == 1:
        raise ConnectionError("first flow attempt")
    return n


@flow(retries=1)
def flow_retries(counter: str) -> int:
    return fails_the_first_flow_attempt(counter)


@flow(name="returns-what-it-allowed-to-fail")
def returns_allowed_failure(x: int) -> int:
    broken = breaks(x)
    cleanup(allow_failure(broken))
    return broken


@flow(name="calls-a-flow-that-returns-a-failure")
def calls_returns_allowed_failure(x: int) -> int:
    return returns_allowed_failure(x)


@task
def passes_on(x: int) -> int:
    return x


@flow(name="allows-a-skip-behind-a-failure")
def allows_a_skip_behind_a_failure(x: int) -> str:
    skipped = passes_on(breaks(x))  # never runs: its input failed
    return cleanup(allow_failure(skipped))  # runs, reading None


@task
def stored(x: int) -> int:
    return x + 1


@flow(result_storage="gs://kumoflow-results/prefect-features")
def inherited_storage(x: int) -> int:
    return stored(x)
