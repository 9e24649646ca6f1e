"""Cloud Run functions (2nd gen) entry points; each is one functions-framework target.

functions-framework loads this file by its path, as a module of no package, so it imports the
package's face by name (a relative import would have no parent here).

Every function but one is reached by a Pub/Sub push subscription (in the cloud with an OIDC
token, see infra/pubsub.tf; on the emulator locally) and receives a messagePublished
CloudEvent. `resume_callback` is an HTTP function: people open signed pause links with it.
"""

from __future__ import annotations

import json
from typing import Any

import flask
import functions_framework
from pydantic import TypeAdapter

from orchestrator.contracts import (
    TIMER_DUE,
    Envelope,
    HooksRequested,
    TaskFailed,
    TaskRequested,
    TaskSucceeded,
    TimerDue,
)
from orchestrator.errors import BadInputError, TransientError
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
    Fired,
    Refused,
    Runtime,
    Windowed,
    admit,
    advance,
    fire_timer,
    run_hooks,
    run_task,
    start_run,
    tick,
)
from orchestrator.waits import callback_page


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
    if not isinstance(req, TaskRequested | HooksRequested):
        raise BadInputError(f"task_worker takes dev.kumoflow.task.requested, not {event.type}")
    if left_to_another(event.code):
        log_event(f"request left to the worker for code {event.code}", event)
        return
    if isinstance(req, HooksRequested):  # a run's end was committed: its hooks, notifications
        failed = run_hooks(rt, req)
        log_event(f"hooks run ({failed} failed)", event)
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


def _fire_timer(rt: Runtime, cloud_event: Any, seen: Seen) -> None:
    """One timer's own push (a Cloud Task): fire that entry, as the tick would."""
    seen.id, seen.type = str(cloud_event["id"]), TIMER_DUE
    data = cloud_event.data
    seen.raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    due = TypeAdapter(TimerDue).validate_json(seen.raw)
    fired = fire_timer(rt, due)
    LOGGER.info(
        "timer %s %s",
        due.entry_id,
        fired.value,
        extra={"function": "sweeper", "run_id": due.run_id, "event_id": seen.id},
    )
    if fired is Fired.EARLY:  # non-2xx: the queue delivers it again after its backoff
        raise TransientError(f"timer {due.entry_id} of run {due.run_id} is not due yet")


@functions_framework.cloud_event
@push_authenticated
def sweeper(cloud_event: Any) -> None:
    """Fire due timers (retry dispatches, run timeouts). Cloud Scheduler ticks it via Pub/Sub
    (the tick's content does not matter, so nothing in it can be bad input); a timer's own
    Cloud Task pushes a dev.kumoflow.timer.due CloudEvent that fires that timer alone."""
    if cloud_event["type"] == TIMER_DUE:
        guarded("sweeper", cloud_event, lambda rt, seen: _fire_timer(rt, cloud_event, seen))
        return
    rt = runtime()
    fired = tick(rt)
    if fired:
        LOGGER.info("fired %d timer(s)", fired, extra={"function": "sweeper"})


@functions_framework.cloud_event
@push_authenticated
def dead_letter_sink(cloud_event: Any) -> None:
    """Record a message Pub/Sub forwarded to the dead-letter topic (`kumoflow dlq list`)."""
    record_dead_letter(cloud_event)


@functions_framework.http
def resume_callback(request: flask.Request) -> flask.Response:
    """A pause's signed link (orchestrator.waits.resume_url), opened from a chat message or an
    email: public (infra/callback.tf), it shows the pause's form and gives the node its input,
    and answers 403 to anything but a valid, unexpired link."""
    page = callback_page(runtime(), request.method, request.path, request.args, request.get_data())
    response = flask.Response(page.html, status=page.status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"  # a page behind a secret link
    return response
