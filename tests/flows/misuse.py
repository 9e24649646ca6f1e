"""Module-level definitions the compile tests misuse on purpose."""

from __future__ import annotations

from orchestrator import task


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task(name="emit")
def emit(prefix: str) -> str:
    return prefix
