"""Flows that pass parts of values on: projections of parameters and of task results."""

from __future__ import annotations

from typing import Any

from orchestrator import GcsObject, allow_failure, flow, task


@task(name="listing")
def listing(prefix: str) -> dict[str, Any]:
    names = [f"{prefix}/a", f"{prefix}/b"]
    return {"items": [{"name": n, "size": len(n)} for n in names], "count": len(names)}


@task(name="describe")
def describe(bucket: str, name: str) -> str:
    return f"gs://{bucket}/{name}"


@task(name="shout")
def shout(name: str) -> str:
    return name.upper()


@task(name="twice")
def twice(x: int) -> int:
    return 2 * x


@flow(name="projections")
def projections(obj: GcsObject, prefix: str = "p") -> dict[str, Any]:
    res = listing(prefix)
    return {
        "where": describe(obj.bucket, obj.name),  # parts of a model parameter
        "first": shout(res["items"][0]["name"]),  # a chained path into a task's result
        "count": res["count"],  # a projection in the flow's own result
    }


@flow(name="projection-missing")
def projection_missing(prefix: str = "p") -> str:
    return shout(listing(prefix)["items"][5]["name"])


@flow(name="map-over-part")
def map_over_part(batch: dict[str, Any]) -> list[int]:
    return twice.map(batch["values"])


@task(name="breaks")
def breaks(x: int) -> int:
    raise ValueError(f"broke on {x}")


@task(name="cleanup")
def cleanup(outcome: int | None, label: str) -> str:
    return f"{label}: {'ok' if outcome is not None else 'upstream failed'}"


@flow(name="clean-up-after-failure")
def clean_up_after_failure(x: int = 1) -> str:
    return cleanup(allow_failure(breaks(x)), "cleanup")


@flow(name="allowed-and-genuine-failure")
def allowed_and_genuine_failure(x: int = 1) -> list[str]:
    return [cleanup(allow_failure(breaks(x)), "a"), cleanup(breaks(x), "b")]
