"""Prefect 3's in-process `.map` with a fan-in, the same shape as benchmarks._width_flow.

Run by benchmarks._prefect with the Python of its own venv (Prefect is not a kumoflow
dependency): `python _prefect_map.py WIDTH [run-time]`. Prints one JSON line. A first one-item
run starts Prefect's temporary local server and is timed apart from the measured run."""

from __future__ import annotations

import json
import resource
import sys
import time

import prefect
from prefect import flow, task


@task
def ident(x: int) -> int:
    return x


@task
def total(values: list[int]) -> int:
    return sum(values)


@task
def make_items(width: int) -> list[int]:
    return list(range(width))


@flow
def width_map(items: list[int]) -> int:
    return total(ident.map(items))


@flow
def run_time_map(width: int) -> int:
    return total(ident.map(make_items(width)))


def main() -> None:
    width = int(sys.argv[1])
    run_time = sys.argv[2:] == ["run-time"]  # the list made by a task inside the flow
    start = time.perf_counter()
    width_map([0])
    warm = time.perf_counter() - start
    start = time.perf_counter()
    value = run_time_map(width) if run_time else width_map(list(range(width)))
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "prefect": prefect.__version__,
        "width": width,
        "warmup_s": warm,
        "seconds": seconds,
        "value_ok": value == sum(range(width)),
        "peak_rss_bytes": usage.ru_maxrss * 1024,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
