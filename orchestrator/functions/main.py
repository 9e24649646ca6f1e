"""Cloud Run functions (2nd gen) entry points; each is one functions-framework target.

functions-framework loads this file by its path, as a module of no package, so it imports the
package's face by name (a relative import would have no parent here).

Every function is reached by a Pub/Sub push subscription (in the cloud with an OIDC token, see
infra/pubsub.tf; on the emulator locally) and receives a messagePublished CloudEvent.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from orchestrator.contracts import Envelope, TaskFailed, TaskRequested, TaskSucceeded
from orchestrator.errors import BadInputError
from orchestrator.functions import (
    REJECTED,
    Seen,
    guarded,
    handle,
    left_to_another,
    log_event,
    push_authenticated,
    record_dead_letter,
    refused,
    run_requests,
    runtime,
)
from orchestrator.runtime import (
    LOGGER,
    Refused,
    Runtime,
    Windowed,
    admit,
    advance,
    run_task,
    start_run,
    tick,
)


def _start(rt: Runtime, cloud_event: Any, seen: Seen) -> None:
    """Start every flow the event asks for. A flow that refuses it gets its own dead letter
    (naming it) and the others still start; a transient failure still raises (redelivery
    then dedupes what started and refuses again, into the same letter)."""
    for req in run_requests(rt, cloud_event, seen):
        if isinstance(req, Refused):
            refused(rt, "run_starter", cloud_event, seen, req.error, flow=req.flow)
            continue
        if isinstance(req, Windowed):
            try:
                window = admit(rt, req)  # its run starts when the window closes (the sweeper)
            except REJECTED as e:
                refused(rt, "run_starter", cloud_event, seen, e, flow=req.flow)
                continue
            LOGGER.info(
                "event joined a trigger window",
                extra={"run_id": window, "flow": req.flow, "event_id": seen.id},
            )
            continue
        assert req.run_id is not None
        try:
            run, created = start_run(rt, req, run_id=req.run_id)
        except REJECTED as e:
            refused(rt, "run_starter", cloud_event, seen, e, flow=req.flow)
            continue
        LOGGER.info(
            "run started" if created else "duplicate trigger: run exists",
            extra={
                "run_id": run.run_id,
                "flow": run.flow,
                "event_id": seen.id,
                "reason": run.trigger.kind,
            },
        )


def _work(rt: Runtime, event: Envelope) -> None:
    req = event.data
    if not isinstance(req, TaskRequested):
        raise BadInputError(f"task_worker takes dev.kumoflow.task.requested, not {event.type}")
    if left_to_another(event.code):
        log_event(f"attempt left to the worker for code {event.code}", event)
        return
    outcome = run_task(rt, req)
    log_event(
        "attempt ignored (duplicate)"
        if outcome is None
        else f"attempt {'succeeded' if isinstance(outcome, TaskSucceeded) else 'failed'}",
        event,
    )


def _advance(rt: Runtime, event: Envelope) -> None:
    data = event.data
    if not isinstance(data, TaskSucceeded | TaskFailed):
        raise BadInputError(f"orchestrator takes task.succeeded/task.failed, not {event.type}")
    changed = advance(rt, data.run_id, data)
    log_event("advanced" if changed else "ignored (duplicate or stale)", event)


@functions_framework.cloud_event
@push_authenticated
def run_starter(cloud_event: Any) -> None:
    guarded("run_starter", cloud_event, lambda rt, seen: _start(rt, cloud_event, seen))


@functions_framework.cloud_event
@push_authenticated
def task_worker(cloud_event: Any) -> None:
    handle("task_worker", cloud_event, _work)


@functions_framework.cloud_event
@push_authenticated
def orchestrator(cloud_event: Any) -> None:
    handle("orchestrator", cloud_event, _advance)


@functions_framework.cloud_event
@push_authenticated
def sweeper(cloud_event: Any) -> None:
    """Fire due timers (retry dispatches, run timeouts). Cloud Scheduler ticks it via Pub/Sub;
    the tick's content does not matter, so nothing in it can be bad input."""
    rt = runtime()
    fired = tick(rt)
    if fired:
        LOGGER.info("fired %d timer(s)", fired, extra={"function": "sweeper"})


@functions_framework.cloud_event
@push_authenticated
def dead_letter_sink(cloud_event: Any) -> None:
    """Record a message Pub/Sub forwarded to the dead-letter topic (`kumoflow dlq list`)."""
    record_dead_letter(cloud_event)
