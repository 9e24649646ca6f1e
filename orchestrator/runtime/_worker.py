"""The task worker: claim one attempt, load inputs, run the user's function, store the result."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import threading
import traceback
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from contracts import ErrorInfo, FlowSpec, Run, TaskFailed, TaskRequested, TaskRun, TaskSucceeded
from orchestrator.engine import (
    JSON_TYPE,
    PICKLE_TYPE,
    PlannedTask,
    claim,
    decode,
    encode,
    resolve,
)
from orchestrator.errors import (
    BadInputError,
    ConflictError,
    KumoflowError,
    NotFoundError,
    TransientError,
)
from orchestrator.io import CURRENT_BLOBS
from orchestrator.ports import Commit
from orchestrator.runtime import _cache as cache
from orchestrator.runtime._cache import TaskRunContext
from orchestrator.runtime._runtime import Runtime

# How long a claim holds when a task sets no timeout; production's push ack deadline is 600 s.
DEFAULT_LEASE_S = 900.0
LEASE_GRACE_S = 60.0


Outcome = TypeVar("Outcome", TaskSucceeded, TaskFailed)


@dataclass(frozen=True)
class Claimed:
    """An attempt this worker holds: what every later phase needs, read once."""

    req: TaskRequested
    run: Run
    planned: PlannedTask
    record: TaskRun  # as it was before the claim (released back to it on a transient error)
    spec: FlowSpec
    uri: str  # where this attempt's result goes
    started: datetime


def run_task(rt: Runtime, req: TaskRequested) -> TaskSucceeded | TaskFailed | None:
    """Run attempt `req.attempt`; None when it is not ours to run (a duplicate or stale request).

    Four phases, each below in this order: claim, load inputs, call, store and report."""
    claimed = claim_attempt(rt, req)
    if not isinstance(claimed, Claimed):
        return claimed
    try:
        args = load_inputs(rt, claimed)
        data, content_type, cached = call_task(rt, claimed, args)
        rt.blobs.put(claimed.uri, data, content_type)
    except TransientError:
        _release(rt, req, claimed.record)  # not the task's fault: let Pub/Sub redeliver it
        raise
    except Exception as e:
        return _report(rt, _failure(rt, claimed, e))
    return _succeeded(rt, req, claimed.uri, rt.worker_id, claimed.started, cached=cached)


def claim_attempt(rt: Runtime, req: TaskRequested) -> Claimed | TaskSucceeded | None:
    """Take the attempt in the store; a duplicate gets None, or the completion a dead worker
    stored but never reported."""
    found = rt.state.load_task(req.run_id, req.key)
    if found is None:
        raise NotFoundError(f"task.requested names run {req.run_id!r}, which does not exist")
    run, record, etag = found
    plan = rt.plan(run.flow_version, run.params)
    planned = plan.tasks.get(req.key)
    if planned is None:
        raise BadInputError(f"run {req.run_id!r} has no task {req.key!r}")
    if record is None:
        return None  # never queued: a forged or reordered request
    options = planned.node.options
    ext = "pickle" if options.result_serializer == "pickle" else "json"
    uri = rt.result_uri(req.run_id, f"{req.key}/{req.attempt}", ext, options.result_storage)
    started = rt.clock.now()
    lease = (options.timeout_seconds or DEFAULT_LEASE_S) + LEASE_GRACE_S
    taken = claim(record, req.attempt, rt.worker_id, started, lease)
    if taken is None:
        return _completed_elsewhere(rt, req, record, uri)
    try:
        rt.state.commit(Commit(run_id=req.run_id, tasks=[(taken, etag)]))
    except ConflictError:
        return None  # another delivery claimed it first
    return Claimed(req, run, planned, record, rt.spec(run.flow_version), uri, started)


def load_inputs(rt: Runtime, c: Claimed) -> dict[str, Any]:
    """The task's arguments: literals, parameters and upstream results read from the blob store."""
    plan = rt.plan(c.run.flow_version, c.run.params)
    return {
        name: resolve(expr, c.run.params, plan.members, lambda k: _load_result(rt, c.req, k))
        for name, expr in c.planned.args.items()
    }


def call_task(rt: Runtime, c: Claimed, args: dict[str, Any]) -> tuple[bytes, str, bool]:
    """Run the user's function (or reuse a cached result): (encoded result, type, cached)."""
    options = c.planned.node.options
    fn = rt.resolver.resolve(c.planned.node.task, c.spec.source)
    key = None
    if options.cache_key_fn:
        context = TaskRunContext(c.req.run_id, c.req.key, options.name, c.planned.node.task)
        key_fn = rt.resolver.resolve(options.cache_key_fn, c.spec.source)
        key = cache.cache_key(key_fn, context, args)
        hit = cache.lookup(rt, options, key, c.started)
        if hit is not None:
            pickled = options.result_serializer == "pickle"
            return hit, PICKLE_TYPE if pickled else JSON_TYPE, True
    token = CURRENT_BLOBS.set(rt.blobs)
    try:
        value = _invoke(fn, args, options.timeout_seconds)
    finally:
        CURRENT_BLOBS.reset(token)
    data, content_type, ext = encode(value, options.result_serializer, what=f"task {c.req.key!r}")
    cache.store(rt, options, key, data, content_type, ext, c.started)
    return data, content_type, False


def _failure(rt: Runtime, c: Claimed, e: Exception) -> TaskFailed:
    if rt.exceptions is not None:
        rt.exceptions[(c.req.run_id, c.req.key, c.req.attempt)] = e
    return TaskFailed(
        run_id=c.req.run_id,
        key=c.req.key,
        attempt=c.req.attempt,
        error=error_info(e, c.req.key),
        retryable=_retryable(e, c.planned.node.options.retry.retry_on),
        worker=rt.worker_id,
        started_at=c.started,
        ended_at=rt.clock.now(),
    )


def _succeeded(
    rt: Runtime,
    req: TaskRequested,
    uri: str,
    worker: str,
    started: datetime,
    *,
    cached: bool = False,
) -> TaskSucceeded:
    return _report(
        rt,
        TaskSucceeded(
            run_id=req.run_id,
            key=req.key,
            attempt=req.attempt,
            result_uri=uri,
            worker=worker,
            started_at=started,
            ended_at=rt.clock.now(),
            cached=cached,
        ),
    )


def _report(rt: Runtime, outcome: Outcome) -> Outcome:
    """Publish an attempt's completion; its id is the same for every worker that reports it."""
    verdict = "succeeded" if isinstance(outcome, TaskSucceeded) else "failed"
    rt.publish(
        rt.topics.events,
        outcome,
        subject=outcome.key,
        event_id=f"{outcome.run_id}/{outcome.key}/{outcome.attempt}/{verdict}",
    )
    return outcome


def _completed_elsewhere(
    rt: Runtime, req: TaskRequested, record: TaskRun, uri: str
) -> TaskSucceeded | None:
    """A duplicate request for a running attempt. If that attempt already stored its result,
    its worker died before publishing: publish the completion on its behalf (idempotent)."""
    last = record.attempts[-1] if record.attempts else None
    if last is None or record.attempt != req.attempt or record.status.terminal:
        return None
    try:
        rt.blobs.get(uri)
    except NotFoundError:
        return None
    return _succeeded(rt, req, uri, last.worker or rt.worker_id, last.started_at or rt.clock.now())


def _release(rt: Runtime, req: TaskRequested, before: TaskRun) -> None:
    found = rt.state.load_task(req.run_id, req.key)
    if found is None or found[1] is None:
        return
    current, etag = found[1], found[2]
    if current.attempt == req.attempt and current.attempts[-1].worker == rt.worker_id:
        with contextlib.suppress(ConflictError):  # someone moved on; the lease covers the rest
            rt.state.commit(Commit(run_id=req.run_id, tasks=[(before, etag)]))


def _load_result(rt: Runtime, req: TaskRequested, key: str) -> Any:
    uri = req.inputs.get(key)
    if uri is not None:
        return decode(rt.blobs.get(uri), uri)
    run_id = req.run_id
    found = rt.state.load_task(run_id, key)
    record: TaskRun | None = found[1] if found else None
    if record is None or record.result_uri is None:
        raise NotFoundError(f"upstream task {key!r} of run {run_id!r} has no result")
    return decode(rt.blobs.get(record.result_uri), record.result_uri)


def error_info(e: BaseException, key: str | None = None) -> ErrorInfo:
    cls = type(e)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    tb = "".join(traceback.format_exception(e))
    return ErrorInfo(type=name, message=str(e), traceback=tb[-8000:], task=key)


def _retryable(e: BaseException, retry_on: tuple[str, ...]) -> bool:
    if isinstance(e, KumoflowError) and not e.retryable and not isinstance(e, NotFoundError):
        return False  # our own definition/serialization errors will fail the same way again
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(e).__mro__}
    return any(r in names for r in retry_on)


def call_with(fn: Callable[..., Any], args: dict[str, Any]) -> Any:
    """Call with arguments bound by name, honouring *args, **kwargs and positional-only."""
    args = _coerce(fn, args)
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name not in args:
            continue
        if p.kind is p.VAR_POSITIONAL:
            positional.extend(args[p.name])
        elif p.kind is p.VAR_KEYWORD:
            keywords.update(args[p.name])
        elif p.kind is p.POSITIONAL_ONLY:
            positional.append(args[p.name])
        else:
            keywords[p.name] = args[p.name]
    return fn(*positional, **keywords)


@functools.lru_cache(maxsize=512)
def _model_params(fn: Callable[..., Any]) -> dict[str, TypeAdapter[Any]]:
    """Parameters annotated with pydantic models (GcsObject, ...): JSON in, models out."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: pass values as they are
        return {}
    out: dict[str, TypeAdapter[Any]] = {}
    for name, hint in hints.items():
        kinds = typing.get_args(hint) or (hint,)
        if name != "return" and any(
            isinstance(k, type) and issubclass(k, BaseModel) for k in kinds
        ):
            out[name] = TypeAdapter(hint)
    return out


def _coerce(fn: Callable[..., Any], args: dict[str, Any]) -> dict[str, Any]:
    adapters = _model_params(fn)
    if not adapters:
        return args
    return {k: adapters[k].validate_python(v) if k in adapters else v for k, v in args.items()}


def _invoke(fn: Callable[..., Any], args: dict[str, Any], timeout: float | None) -> Any:
    if inspect.iscoroutinefunction(fn):

        async def main() -> Any:
            return await asyncio.wait_for(call_with(fn, args), timeout)

        return asyncio.run(main())
    if timeout is None:
        return call_with(fn, args)
    # A thread cannot be killed: on timeout the attempt fails and the thread is abandoned.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call_with(fn, args)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), daemon=True, name="kumoflow-task")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"task exceeded its timeout of {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["value"]
