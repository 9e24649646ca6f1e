"""From an attempt's end to its completion event: the one path every reporter takes.

An attempt ends in a worker, in a duplicate request that finds the result already stored (its
worker died before reporting), in the sweeper (a lease that ran out after the result was stored,
a deferred task's check) and in a subflow run's end. Each builds its completion here, from the
stored bytes, so each carries the same facts: a gate's choice and the lengths of the lists
run-time maps read from the result. The orchestrator then applies one set of trust checks to
all of them (see _settle). Event ids are the same for every reporter of one attempt.
"""

from __future__ import annotations

import traceback
from datetime import datetime
from typing import TypeVar

from orchestrator.contracts import (
    MAX_MESSAGE_CHARS,
    ErrorInfo,
    Run,
    RunStatus,
    TaskFailed,
    TaskSucceeded,
    clip,
)
from orchestrator.engine import Plan, decode, task_serializer
from orchestrator.errors import KumoflowError, NotFoundError
from orchestrator.runtime._items import list_facts
from orchestrator.runtime._runtime import Runtime


def facts(
    rt: Runtime, plan: Plan, run_id: str, key: str, data: bytes
) -> tuple[str | None, dict[str, int]]:
    """What the orchestrator reads from a result without loading it: a gate's choice and the
    lengths of the lists the run-time maps over it iterate (their items stored first, for the
    children to read one by one: see _items)."""
    branches = plan.tasks[key].node.branches
    value = decode(data, task_serializer(plan, key)) if branches else None
    choice = value if isinstance(value, str) else None
    return choice, list_facts(rt, plan, run_id, key, data)


def succeeded(
    rt: Runtime,
    plan: Plan,
    run_id: str,
    key: str,
    attempt: int,
    *,
    token: str,
    uri: str,
    data: bytes,
    worker: str,
    started_at: datetime,
    ended_at: datetime,
    cached: bool = False,
) -> TaskSucceeded:
    """The completion of an attempt whose result `data` is stored at `uri`."""
    choice, found = facts(rt, plan, run_id, key, data)
    return TaskSucceeded(
        run_id=run_id,
        key=key,
        attempt=attempt,
        token=token,
        result_uri=uri,
        worker=worker,
        started_at=started_at,
        ended_at=ended_at,
        cached=cached,
        choice=choice,
        lengths=found,
    )


def stored(
    rt: Runtime,
    plan: Plan,
    run_id: str,
    key: str,
    attempt: int,
    *,
    token: str,
    uri: str,
    worker: str,
    started_at: datetime,
    ended_at: datetime,
) -> TaskSucceeded | None:
    """The completion of an attempt whose result is already stored; None when none is."""
    try:
        data = rt.blobs.get(uri)
    except NotFoundError:
        return None
    return succeeded(
        rt,
        plan,
        run_id,
        key,
        attempt,
        token=token,
        uri=uri,
        data=data,
        worker=worker,
        started_at=started_at,
        ended_at=ended_at,
    )


def failed(
    run_id: str,
    key: str,
    attempt: int,
    e: BaseException,
    *,
    token: str,
    retry_on: tuple[str, ...],
    worker: str,
    started_at: datetime,
    ended_at: datetime,
) -> TaskFailed:
    """The completion of an attempt that raised `e`; `retry_on` is the task's retry policy's."""
    return TaskFailed(
        run_id=run_id,
        key=key,
        attempt=attempt,
        token=token,
        error=error_info(e, key),
        retryable=retryable(e, retry_on),
        worker=worker,
        started_at=started_at,
        ended_at=ended_at,
    )


def child_ended(rt: Runtime, parent_plan: Plan, run: Run) -> TaskSucceeded | TaskFailed:
    """A subflow run ended: the end of the parent node's attempt it stands for, under that
    attempt's token, with the facts the parent's maps need from its stored result."""
    parent = run.parent
    assert parent is not None
    now = rt.clock.now()
    worker = f"subflow run {run.run_id}"
    started, ended = run.started_at or run.created_at, run.ended_at or now
    if run.status is RunStatus.SUCCEEDED:
        found = stored(
            rt,
            parent_plan,
            parent.run_id,
            parent.key,
            parent.attempt,
            token=parent.token,
            uri=parent.result_uri,
            worker=worker,
            started_at=started,
            ended_at=ended,
        )
        if found is not None:
            return found
    cause = run.error or ErrorInfo(type="Failed", message="run failed")
    error = ErrorInfo(
        type="SubflowFailed",
        message=clip(
            f"subflow run {run.run_id} ended {run.status.value}: {cause.message}",
            MAX_MESSAGE_CHARS,
        ),
        task=parent.key,
    )
    return TaskFailed(
        run_id=parent.run_id,
        key=parent.key,
        attempt=parent.attempt,
        token=parent.token,
        error=error,
        retryable=True,
        worker=worker,
        started_at=started,
        ended_at=ended,
    )


Outcome = TypeVar("Outcome", TaskSucceeded, TaskFailed, TaskSucceeded | TaskFailed)


def report(rt: Runtime, outcome: Outcome) -> Outcome:
    """Publish an attempt's completion; its id is the same for every reporter of it (its
    worker, a worker finishing a dead one's report, a subflow run's end, a deferred check)."""
    verdict = "succeeded" if isinstance(outcome, TaskSucceeded) else "failed"
    rt.publish(
        rt.topics.events,
        outcome,
        subject=outcome.key,
        event_id=f"{outcome.run_id}/{outcome.key}/{outcome.attempt}/{verdict}",
    )
    return outcome


def error_info(e: BaseException, key: str | None = None) -> ErrorInfo:
    cls = type(e)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    return ErrorInfo(
        type=name, message=str(e), traceback="".join(traceback.format_exception(e)), task=key
    )


def retryable(e: BaseException, retry_on: tuple[str, ...]) -> bool:
    if isinstance(e, KumoflowError):
        # Infrastructure that was briefly away: another attempt may well work. Our own
        # definition and serialization errors would fail the same way again.
        return e.retryable or isinstance(e, NotFoundError)
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(e).__mro__}
    return any(r in names for r in retry_on)
