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


@task(name="padded")
def padded(count: int, size: int = 200) -> list[str]:
    """`count` strings of `size` characters each: a list whose elements have a known size."""
    return [f"{i:08d}".ljust(size, "x") for i in range(count)]


@flow(name="map-sized-elements")
def sized_elements(count: int = 3, size: int = 200) -> dict[str, int]:
    return summarize(measure.map(padded(count, size)))


@task(name="pickled-pairs", result_serializer="pickle")
def pickled_pairs(count: int) -> list[tuple[str, int]]:
    return [(f"p{i}", i) for i in range(count)]  # tuples: JSON would make them lists


@task(name="pair-size")
def pair_size(pair: tuple[str, int]) -> int:
    assert isinstance(pair, tuple), f"a pickled tuple arrives as {type(pair).__name__}"
    return len(pair[0]) + pair[1]


@flow(name="map-over-a-pickled-list")
def over_pickled(count: int = 3) -> dict[str, int]:
    return summarize(pair_size.map(pickled_pairs(count)))


@task(name="two-lists")
def two_lists(count: int) -> dict[str, list[str]]:
    return {"a": [f"a{i}" for i in range(count)], "b": [f"bb{i}" for i in range(count + 1)]}


@flow(name="maps-over-two-parts-of-one-result")
def two_maps(count: int = 3) -> dict[str, dict[str, int]]:
    both = two_lists(count)
    return {
        "a": summarize(measure.map(both["a"])),
        "b": summarize(measure.map(both["b"])),
        "a-again": summarize(double.map(measure.map(both["a"]))),
    }
