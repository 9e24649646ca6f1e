"""A diamond: one source, two branches in parallel, one join."""

from __future__ import annotations

from orchestrator import flow, task


@task(name="load")
def load(n: int) -> list[int]:
    return list(range(1, n + 1))


@task(name="total")
def total(values: list[int]) -> int:
    return sum(values)


@task(name="squares")
def squares(values: list[int]) -> int:
    return sum(v * v for v in values)


@task(name="report")
def report(total: int, squares: int) -> dict[str, int]:
    return {"total": total, "squares": squares}


@flow(name="diamond")
def diamond(n: int = 10) -> dict[str, int]:
    values = load(n)
    return report(total(values), squares(values))
