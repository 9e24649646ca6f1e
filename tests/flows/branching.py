"""Flows that choose at run time which of their tasks run."""

from __future__ import annotations

from typing import Any

from orchestrator import branch, flow, switch, task


@task(name="is-big")
def is_big(n: int) -> bool:
    return n > 10


@task(name="label")
def label(text: str) -> str:
    return text


@task(name="decorate")
def decorate(text: str) -> str:
    return f"*{text}*"


@task(name="explode")
def explode(n: int) -> str:
    raise RuntimeError(f"exploded on {n}")


@flow(name="branching")
def branching(n: int) -> Any:
    return branch(
        is_big(n),
        then=lambda: decorate(label("big")),  # two tasks deep: both skipped when not taken
        otherwise=lambda: label("small"),
    )


@flow(name="switching")
def switching(kind: str) -> Any:
    return switch(
        kind,
        {"csv": lambda: label("comma"), "tsv": lambda: label("tab")},
        default=lambda: label("unknown"),
    )


@flow(name="branch-fails")
def branch_fails(n: int) -> Any:
    return branch(is_big(n), then=lambda: explode(n), otherwise=lambda: label("small"))
