"""Deferrable tasks whose 'external work' is a counter in the handle: each check is one poll;
the work ends after `need` polls, succeeding or failing. Cancelled handles are recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator import TransientError, flow, task
from orchestrator.runtime import Deferred, deferrable

CANCELLED: list[str] = []  # in-process runs only: the cancel hook runs in this process
UNREACHABLE = False  # the check cannot tell (its API is away): it raises a retryable error
STALL: Callable[[dict[str, Any]], None] | None = None  # called first by every check (may hang)


def _check(handle: dict[str, Any]) -> Any:
    if STALL is not None:
        STALL(handle)
    if UNREACHABLE:
        raise TransientError("the job API answered 503")
    polls = handle["polls"] + 1
    if polls < handle["need"]:
        return Deferred({**handle, "polls": polls})
    if handle["fail"]:
        raise RuntimeError(f"job {handle['job']} failed after {polls} polls")
    return {"job": handle["job"], "polls": polls}


def _cancel(handle: dict[str, Any]) -> None:
    CANCELLED.append(handle["job"])


@task(name="external-job", retries=1)
@deferrable(_check, _cancel)
def external_job(job: str, need: int = 3, fail: bool = False) -> Any:
    if need == 0:
        return {"job": job, "polls": 0}  # done inline: no parking
    return Deferred({"job": job, "polls": 0, "need": need, "fail": fail})


@task(name="describe")
def describe(outcome: dict[str, Any]) -> str:
    return f"{outcome['job']} after {outcome['polls']} polls"


@flow(name="deferred-job")
def deferred_job(need: int = 3, fail: bool = False) -> str:
    return describe(external_job("j1", need, fail))
