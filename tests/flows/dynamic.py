"""Run-time maps: `.map` over lists that exist only once a task has run."""

from __future__ import annotations

from typing import Any

from orchestrator import allow_failure, flow, task, unmapped


@task(name="names")
def names(count: int, prefix: str = "f") -> list[str]:
    return [f"{prefix}{i}.csv" for i in range(count)]


@task(name="listing")
def listing(count: int) -> dict[str, Any]:
    return {"items": [{"name": f"in/{i}.csv", "size": 10 * i} for i in range(count)], "n": count}


@task(name="measure")
def measure(name: str, extra: int = 0) -> int:
    return len(name) + extra


@task(name="size-of")
def size_of(item: dict[str, Any]) -> int:
    return int(item["size"])


@task(name="double")
def double(x: int) -> int:
    return 2 * x


@task(name="fragile")
def fragile(name: str) -> int:
    if "2" in name:
        raise ValueError(f"{name} is not welcome")
    return len(name)


@task(name="summarize")
def summarize(values: list[int]) -> dict[str, int]:
    return {"count": len(values), "total": sum(values)}


@task(name="summarize-any")
def summarize_any(values: list[int | None]) -> dict[str, int]:
    return {"count": len(values), "ok": sum(1 for v in values if v is not None)}


@flow(name="list-process-summarize")
def list_process_summarize(count: int = 3, extra: int = 0) -> dict[str, int]:
    return summarize(measure.map(names(count), unmapped(extra)))


@flow(name="map-a-part")
def map_a_part(count: int = 3) -> dict[str, int]:
    return summarize(size_of.map(listing(count)["items"]))


@flow(name="nested-run-time-maps")
def nested(count: int = 4) -> dict[str, int]:
    return summarize(double.map(measure.map(names(count))))


@flow(name="return-a-run-time-map")
def returns_map(count: int = 3) -> list[int]:
    return measure.map(names(count))


@flow(name="map-over-not-a-list")
def not_a_list(count: int = 3) -> dict[str, int]:
    return summarize(size_of.map(listing(count)["n"]))


@flow(name="map-with-failures-allowed")
def failures_allowed(count: int = 4) -> dict[str, int]:
    return summarize_any(allow_failure(fragile.map(names(count))))
