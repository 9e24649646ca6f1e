"""The task worker: claim one attempt, load its inputs, call the user's function, store the
result at the task's derived location, report. Each phase is a function below, in that order.

Claims are fenced: each carries a fresh token, the lease is short and renewed while user code
runs (so it never outlives the function's timeout or the push ack deadline), and the completion
carries the token. A worker that lost its claim may still finish; its report is ignored, and
since a task's result has one write-once location, two executions at once store one result.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import JsonValue

from orchestrator.contracts import (
    FlowSpec,
    NodeSpec,
    Run,
    RunStatus,
    SourceRef,
    TaskFailed,
    TaskRequested,
    TaskRun,
    TaskRuntime,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine import (
    JSON_TYPE,
    PICKLE_TYPE,
    Plan,
    PlannedTask,
    claim,
    claimable,
    decode,
    encode,
    resolve,
    result_refs,
    task_serializer,
)
from orchestrator.errors import BadInputError, ConflictError, NotFoundError
from orchestrator.io import services
from orchestrator.ports import Commit
from orchestrator.runtime._code import module_digest, source_digest
from orchestrator.runtime._completion import failed, report, stored, succeeded
from orchestrator.runtime._context import run_scope, task_scope_for
from orchestrator.runtime._items import own_element
from orchestrator.runtime._keys import computed_key, key_parameters
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._rates import admitted
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.worker import _cache as cache
from orchestrator.runtime.worker._cache import TaskRunContext
from orchestrator.runtime.worker._capture import LOG_TYPE, Capture, capturing
from orchestrator.runtime.worker._defer import Deferred, hooks_of, park
from orchestrator.runtime.worker._invoke import invoke
from orchestrator.runtime.worker._job import job_cancel, noted, start_job
from orchestrator.runtime.worker._lease import Lease
from orchestrator.runtime.worker._receivers import bind_receiver, receiver_key
from orchestrator.runtime.worker._subflow import child_run_id, start_subflow

# A claim lasts rt.lease_seconds (LEASE_S) and is renewed every third of it while user code runs:
# a dead worker's attempt is noticed within a minute, and no lease outlives the platform's limits
# (push ack deadline 600 s; a Cloud Run function's timeout, KUMOFLOW_FUNCTION_TIMEOUT_S, 540 s).
FUNCTION_TIMEOUT_S = float(os.environ.get("KUMOFLOW_FUNCTION_TIMEOUT_S", "540"))
INPUT_READERS = 32  # concurrent reads of a fan-in's inputs


@dataclass(frozen=True)
class Claimed:
    """An attempt this worker holds: what every later phase needs, read once."""

    req: TaskRequested
    run: Run
    plan: Plan
    planned: PlannedTask
    spec: FlowSpec
    token: str
    worker: str
    uri: str  # the task's result location, derived from the plan
    started: datetime
    refused: Exception | None = None  # its concurrency key could not be computed: it fails


def run_task(rt: Runtime, req: TaskRequested) -> TaskSucceeded | TaskFailed | None:
    """Run attempt `req.attempt`; None when it is not ours to run (a duplicate or stale request)."""
    claimed = claim_attempt(rt, req)
    if not isinstance(claimed, Claimed):
        return claimed
    if claimed.refused is not None:
        return report(rt, failure(rt, claimed, claimed.refused))
    lease = Lease(rt, req, claimed.token)
    subflow = claimed.planned.node.subflow
    if subflow is not None:  # the child run does the work; its end completes this attempt
        with lease:  # renewed while a wide child starts; never once it waits
            try:
                args = load_inputs(rt, claimed)
            except Exception as e:
                return report(rt, failure(rt, claimed, e))
            # From here the child run may exist: an error (a publish in an outage) is answered
            # non-2xx, and the request's redelivery resumes this start (see claim_attempt), so
            # the node never fails beside a child that runs on.
            spec = claimed.spec.subflows[subflow]
            start_subflow(rt, req, spec, args, claimed.token, claimed.uri)
        return None
    if claimed.planned.node.options.runtime is TaskRuntime.JOB:
        return launch_job(rt, claimed)
    return run_claimed(rt, claimed, lease)


def run_claimed(
    rt: Runtime, claimed: Claimed, lease: Lease, ceiling: float = FUNCTION_TIMEOUT_S
) -> TaskSucceeded | TaskFailed | None:
    """Run a claimed attempt's body here and report its end (the worker's path, and a job
    execution's: see _jobrun); `ceiling` bounds its timeout (the platform's own limit)."""
    req = claimed.req
    try:
        with lease, capture_attempt(claimed) as logs:
            args = load_inputs(rt, claimed)
            called = call_task(rt, claimed, args, ceiling)
        if isinstance(called, Deferred):  # the work runs elsewhere: the sweeper's checks end it
            store_logs(rt, claimed, logs)
            park(rt, req, claimed.token, called, cancel_hook(rt, claimed))
            return None
        data, content_type, cached = called
        data = store_result(rt, claimed, data, content_type)
    except Exception as e:  # the task's failure, or infrastructure's: a failed attempt either way
        ended = failure(rt, claimed, e)
        logs.failed(ended.error.traceback or f"{ended.error.type}: {ended.error.message}")
        store_logs(rt, claimed, logs)
        return report(rt, ended)
    store_logs(rt, claimed, logs)
    return succeeded_with(rt, claimed, data, cached=cached)


def launch_job(rt: Runtime, c: Claimed) -> TaskFailed | None:
    """A `runtime="job"` attempt: start its execution and park it (see _job); a start that
    failed fails the attempt (retried as the task says; an execution that did start anyway
    finds its token stale and does nothing)."""
    try:
        deferred = start_job(rt, c.req, c.token)
    except Exception as e:
        return report(rt, failure(rt, c, e))
    park(rt, c.req, c.token, deferred, job_cancel(rt), noted(deferred.handle))
    return None


def claim_attempt(rt: Runtime, req: TaskRequested) -> Claimed | TaskSucceeded | None:
    """Take the attempt in the store under a fresh token; a duplicate gets None, or the
    completion a dead worker stored but never reported."""
    snap = rt.task_snapshot(req.run_id, req.key)
    if snap is None:
        raise NotFoundError(f"task.requested names run {req.run_id!r}, which does not exist")
    run = snap.run
    plan = rt.plan_of(run)
    planned = plan.tasks.get(req.key)
    if planned is None:
        raise BadInputError(f"run {req.run_id!r} has no task {req.key!r}")
    record = claimable(run, plan, req.key, snap.tasks.get(req.key), req.attempt, rt.clock.now())
    if record is None or run.status is not RunStatus.RUNNING:
        return None  # never queued (forged or reordered), or the run is not running
    uri = rt.task_result_uri(plan, req.run_id, req.key)
    token = uuid.uuid4().hex
    worker = f"{rt.worker_id}/{token[:8]}"  # unique per claim, not per process
    started = rt.clock.now()
    code = _imported_code(rt, planned.node, plan.spec.source)
    taken = claim(record, req.attempt, token, worker, started, rt.lease_seconds, code)
    claimed = Claimed(req, run, plan, planned, plan.spec, token, worker, uri, started)
    options = planned.node.options
    if not options.priority and run.priority:  # its run's, unless the task sets its own
        options = options.model_copy(update={"priority": run.priority})
    if taken is not None and options.computed_concurrency:
        claimed, taken = _keyed(rt, claimed, taken)
        options = options.model_copy(update={"concurrency": taken.attempts[-1].slot_key})
    etag = snap.etags.get(req.key)
    if taken is not None:
        admits, slot = admitted(rt, req, record, etag, options, started)
        if not admits:
            return None  # over its rate (a timer sends it again) or in line for a slot: queued
        if slot is not None:  # recorded by the claim's commit: its end frees it in one write
            taken = _on_attempt(taken, slot=slot)
    if taken is None:
        done = _completed_elsewhere(rt, req, run, record, uri)
        if done is None and planned.node.subflow is not None:
            return _starting_child(req, run, plan, planned, record, uri)
        return done
    if planned.node.subflow is not None:  # named before it starts: a fast child may end first
        taken = taken.model_copy(
            update={"child_run": child_run_id(req.run_id, req.key, req.attempt)}
        )
    try:  # a record made here is created must-not-exist, like any other claim is fenced
        rt.state.commit(Commit(run_id=req.run_id, tasks=[(taken, etag)]))
    except ConflictError:
        return None  # another delivery claimed it first (or a cancel recorded it)
    return claimed


def _keyed(rt: Runtime, c: Claimed, taken: TaskRun) -> tuple[Claimed, TaskRun]:
    """The attempt's concurrency key, computed from the inputs its key function names (read
    as the attempt reads them) and recorded on the claim; a key function that fails or gives
    no key leaves the attempt without a slot, to fail once claimed (Claimed.refused)."""
    fn = rt.resolver.resolve(c.planned.node.task, c.spec.source)
    try:
        names = key_parameters(fn) or ()
        subset = {n: e for n, e in c.planned.args.items() if n in names}
        args = load_inputs(rt, replace(c, planned=replace(c.planned, args=subset)))
        key = computed_key(fn, c.req.key, args)
    except Exception as e:
        return replace(c, refused=e), taken
    return c, _on_attempt(taken, slot_key=key)


def _on_attempt(taken: TaskRun, **update: Any) -> TaskRun:
    """The claimed record with its attempt (the last one) updated."""
    last = taken.attempts[-1].model_copy(update=update)
    return taken.model_copy(update={"attempts": (*taken.attempts[:-1], last)})


def _imported_code(rt: Runtime, node: NodeSpec, source: SourceRef) -> str | None:
    """Digest of the task's module as this worker imports it, for the attempt's record."""
    if node.subflow is not None:
        return None  # its code runs in the child run's tasks
    try:
        return module_digest(rt.resolver.resolve(node.task, source))
    except Exception:  # user code failing on import: call_task fails the attempt, naming it
        return None


def load_inputs(rt: Runtime, c: Claimed) -> dict[str, Any]:
    """The task's arguments: literals, parameters, and upstream results read from their derived
    locations with their tasks' own serializers. A fan-in's inputs are read concurrently."""

    # A run-time map's child reads its own element alone, not its producer's list (see _items).
    own = own_element(rt, c.plan, c.req.run_id, c.req.key)
    exprs = {n: e for n, e in c.planned.args.items() if own is None or n != own[0]}
    refs = {r for expr in exprs.values() for r in result_refs(expr)}
    plan = rt.grown(c.plan, c.req.run_id, refs)  # a run-time map's results: its children's
    planned = plan.tasks[c.req.key]

    def load(key: str) -> Any:
        uri = rt.task_result_uri(plan, c.req.run_id, key)
        try:
            return decode(rt.blobs.get(uri), task_serializer(plan, key))
        except NotFoundError as e:
            if key in planned.tolerated or key in planned.untaken:
                return None  # allow_failure, or a branch not taken: nothing was stored
            raise NotFoundError(
                f"upstream task {key!r} of run {c.req.run_id!r} has no result"
            ) from e

    keys = list(dict.fromkeys(k for r in sorted(refs) for k in plan.members.get(r, (r,))))
    if len(keys) > 1:
        with ThreadPoolExecutor(min(INPUT_READERS, len(keys))) as pool:
            loaded = dict(zip(keys, pool.map(load, keys), strict=True))
        fetch = loaded.__getitem__
    else:
        fetch = load
    args = {name: resolve(expr, c.run.params, plan.members, fetch) for name, expr in exprs.items()}
    if own is not None:
        args[own[0]] = own[1]
    return {name: args[name] for name in c.planned.args}  # in the order the task declares


def call_task(
    rt: Runtime, c: Claimed, args: dict[str, Any], ceiling: float = FUNCTION_TIMEOUT_S
) -> tuple[bytes, str, bool] | Deferred:
    """Run the user's function (or reuse a cached result): (encoded result, type, cached), or
    the handle of work a deferrable task started elsewhere (see _defer)."""
    node = c.planned.node
    options = node.options
    fn = rt.resolver.resolve(node.task, c.spec.source)
    key = None
    if options.cache_key_fn:
        context = TaskRunContext(
            c.req.run_id,
            c.req.key,
            options.name,
            node.task,
            receiver_key(node.receiver),
            source_digest(fn),
        )
        key_fn = rt.resolver.resolve(options.cache_key_fn, c.spec.source)
        key = cache.cache_key(key_fn, context, args)
        hit = cache.lookup(rt, options, key, c.started)
        if hit is not None:
            pickled = options.result_serializer == "pickle"
            return hit, PICKLE_TYPE if pickled else JSON_TYPE, True
    # Bounded by the function's (or job's) own timeout: past it the platform kills it anyway.
    limit = min(options.timeout_seconds or ceiling, ceiling)
    fn = bind_receiver(fn, node.receiver, c.spec.source)
    scope = task_scope_for(c.run, c.spec, c.req.key, c.req.attempt, options, args)
    with run_scope(scope), services(rt.blobs, rt.blocks, (rt.clock, rt.results_bucket)):
        value = invoke(fn, args, limit if rt.clock.realtime else options.timeout_seconds)
    if isinstance(value, Deferred):
        return value
    data, content_type, ext = encode(value, options.result_serializer, what=f"task {c.req.key!r}")
    cache.store(rt, options, key, data, content_type, ext, c.started)
    return data, content_type, False


def cancel_hook(rt: Runtime, c: Claimed) -> Callable[[dict[str, JsonValue]], None]:
    """What stops a deferred task's work when nobody will wait for it (see _defer)."""
    if c.planned.node.options.runtime is TaskRuntime.JOB:
        return job_cancel(rt)
    hooks = hooks_of(rt.resolver.resolve(c.planned.node.task, c.spec.source))
    cancel = hooks.cancel if hooks is not None else None

    def run(handle: dict[str, JsonValue]) -> None:
        if cancel is not None:
            with services(rt.blobs, rt.blocks, (rt.clock, rt.results_bucket)):
                cancel(handle)

    return run


def store_result(rt: Runtime, c: Claimed, data: bytes, content_type: str) -> bytes:
    """Write once; returns the bytes stored. Another execution of this task may have stored
    first (a slow worker beside a retry): then the stored result is the task's result, and
    this attempt reports it, with the facts (a gate's choice, list lengths) read from it."""
    try:
        rt.blobs.put(c.uri, data, content_type)
    except ConflictError:
        return rt.blobs.get(c.uri)
    return data


def capture_attempt(c: Claimed) -> contextlib.AbstractContextManager[Capture]:
    return capturing(
        {"run_id": c.req.run_id, "flow": c.run.flow, "task": c.req.key,
         "task_name": c.planned.node.options.name, "attempt": c.req.attempt}
    )  # fmt: skip


def store_logs(rt: Runtime, c: Claimed, logs: Capture) -> None:
    """Keep the attempt's log beside its result, before the attempt reports (so a finished
    run has every log). An attempt that printed and logged nothing stores nothing: an upload
    per task would double a wide run's storage operations. Losing a log never fails it."""
    data = logs.dump()
    if not data:
        return
    uri = rt.task_logs_uri(c.plan, c.req.run_id, c.req.key, c.req.attempt)
    try:
        rt.blobs.put(uri, data, LOG_TYPE, overwrite=True)
    except Exception:
        LOGGER.warning(
            "could not store the attempt's log at %s", uri, exc_info=True,
            extra={"run_id": c.req.run_id, "task": c.req.key, "attempt": c.req.attempt},
        )  # fmt: skip


def failure(rt: Runtime, c: Claimed, e: Exception) -> TaskFailed:
    if rt.exceptions is not None:
        rt.exceptions[(c.req.run_id, c.req.key, c.req.attempt)] = e
    return failed(
        c.req.run_id,
        c.req.key,
        c.req.attempt,
        e,
        token=c.token,
        retry_on=c.planned.node.options.retry.retry_on,
        worker=c.worker,
        started_at=c.started,
        ended_at=rt.clock.now(),
    )


def succeeded_with(rt: Runtime, c: Claimed, data: bytes, *, cached: bool = False) -> TaskSucceeded:
    """Report the attempt `c` holds as succeeded with the stored result `data`."""
    return report(
        rt,
        succeeded(
            rt,
            c.plan,
            c.req.run_id,
            c.req.key,
            c.req.attempt,
            token=c.token,
            uri=c.uri,
            data=data,
            worker=c.worker,
            started_at=c.started,
            ended_at=rt.clock.now(),
            cached=cached,
        ),
    )


def _starting_child(
    req: TaskRequested, run: Run, plan: Plan, planned: PlannedTask, record: TaskRun, uri: str
) -> Claimed | None:
    """A duplicate request for a subflow node whose claim holds this attempt: its start may
    have died part way (the child made, its roots not sent, the node not holding). Resume it
    under that claim's token: starting a child run is idempotent (its id is derived)."""
    last = record.attempts[-1] if record.attempts else None
    if (
        last is None
        or last.token is None
        or record.child_run is None
        or record.attempt != req.attempt
        or record.status not in (TaskStatus.RUNNING, TaskStatus.RETRYING)
    ):
        return None
    started = last.started_at or run.created_at
    worker = last.worker or "unknown"
    return Claimed(req, run, plan, planned, plan.spec, last.token, worker, uri, started)


def _completed_elsewhere(
    rt: Runtime, req: TaskRequested, run: Run, record: TaskRun, uri: str
) -> TaskSucceeded | None:
    """A duplicate request for a running attempt. If that attempt already stored its result,
    its worker died before publishing: publish the completion on its behalf (idempotent)."""
    last = record.attempts[-1] if record.attempts else None
    if last is None or last.token is None or record.attempt != req.attempt:
        return None
    if record.status.terminal:
        return None
    now = rt.clock.now()
    found = stored(
        rt,
        rt.plan_of(run),
        req.run_id,
        req.key,
        req.attempt,
        token=last.token,
        uri=uri,
        worker=last.worker or "unknown",
        started_at=last.started_at or now,
        ended_at=now,
    )
    return None if found is None else report(rt, found)
