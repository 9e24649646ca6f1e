"""Flows whose tasks count their executions in files, to prove each ran exactly once."""

from __future__ import annotations

from pathlib import Path

from orchestrator import flow, task, unmapped


def _count(folder: str, name: str) -> None:
    with open(Path(folder) / name, "a") as f:
        f.write("x")


@task(name="source")
def source(folder: str, n: int) -> list[int]:
    _count(folder, "source")
    return list(range(n))


@task(name="left")
def left(folder: str, values: list[int]) -> int:
    _count(folder, "left")
    return sum(values)


@task(name="right")
def right(folder: str, values: list[int]) -> int:
    _count(folder, "right")
    return max(values)


@task(name="item")
def item(folder: str, x: int, offset: int) -> int:
    _count(folder, f"item-{x}")
    return x + offset


@task(name="join")
def join(folder: str, a: int, b: int, items: list[int]) -> dict[str, int]:
    _count(folder, "join")
    return {"left": a, "right": b, "items": sum(items)}


@flow(name="counted")
def counted(folder: str, items: list[int], n: int = 5) -> dict[str, int]:
    values = source(folder, n)
    mapped = item.map(unmapped(folder), items, offset=unmapped(1))
    return join(folder, left(folder, values), right(folder, values), mapped)


def expected(items: list[int], n: int = 5) -> dict[str, int]:
    return {"left": sum(range(n)), "right": n - 1, "items": sum(x + 1 for x in items)}


def counts(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir()}
