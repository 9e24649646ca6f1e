"""Trigger windows: `debounce=` (one run for the last event of a quiet spell) and `batch=` (one
run over up to N events or T seconds), exactly once across instances and redeliveries.

A window is the run it will start, created PENDING and open; its events are outbox entries
of that run (one document each: a burst never contends on one record) and its close is a
timer the sweeper fires. Windows of one trigger (a lane) form a chain 0, 1, 2, ...

- An event first claims the window it will try, write-once in the blob store (so a
  duplicate, however late, follows the same path), then commits itself into that window with
  a create-only marker (a duplicate's commit conflicts and writes nothing).
- Closing commits the chosen events' ids into the run document (conditional on it being
  unchanged), then starts the run. The window is closed once that commit is in.
- An event not chosen (it came late, or over a batch's size) moves on to the next window:
  after its own commit it reads the window; when it is closed without it, it moves itself;
  and the close, after its commit, reads the events again and moves those it left out. An
  event committed before that re-read is seen by it; one committed after sees the close: no
  event is lost, and a move is idempotent (the marker in the next window).

A crash anywhere leaves either the event unacknowledged (redelivered: it follows its claim
and the markers down the chain again) or the close timer in place (fired again: every step
of closing is repeatable). The lane's head (the first window still open, as far as anyone
knows) is only a hint kept in a blob so that new events do not walk the whole chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.contracts import (
    Batch,
    ErrorInfo,
    OutboxEntry,
    OutboxKind,
    Run,
    RunRequested,
    RunStatus,
    TriggerInfo,
)
from orchestrator.errors import ConflictError, KumoflowError, NotFoundError
from orchestrator.ports import Commit
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._params import bind_params, check_types, secret_params
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.control._start import begin, requested_spec

CLOSE = "close"  # the id of a window's close timer
EVENT = "ev-"  # the id prefix of a window's event entries (and of their markers)
COUNTER = "window"
# Event entries are records, not effects: they never come due.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Windowed:
    """An event for a windowed trigger: the run it alone would have started, its trigger's
    lane (flow and trigger index) and the window settings."""

    req: RunRequested
    lane: str
    debounce: float | None = None
    batch: Batch | None = None
    item_param: str | None = None  # batch=: the list parameter the events' values fill

    @property
    def flow(self) -> str:
        return self.req.flow


def lane_id(flow: str, index: int) -> str:
    return hashlib.sha256(f"lane|{flow}|{index}".encode()).hexdigest()[:16]


def window_id(lane: str, k: int) -> str:
    return hashlib.sha256(f"window|{lane}|{k}".encode()).hexdigest()[:24]


def admit(rt: Runtime, w: Windowed) -> str:
    """Put the event into exactly one window; returns the window's run id. An event whose
    params its flow refuses (as start_run would) raises before it joins any window."""
    _bound(rt, w.req, _params(w.batch is not None, w.item_param, [w]))
    return _join(rt, w, _claim(rt, w))


def _params(batched: bool, item_param: str | None, chosen: list[Windowed]) -> dict[str, Any]:
    """A window's run params: a batch's values as one list, else the last event's params."""
    if batched and item_param:
        return {item_param: [w.req.params[item_param] for w in chosen]}
    return dict(chosen[-1].req.params)


def _bound(rt: Runtime, req: RunRequested, params: dict[str, Any]) -> dict[str, Any]:
    version, spec = requested_spec(rt, req)
    bound = bind_params(spec.params, params, flow=spec.name)
    check_types(rt.flow_function(spec), bound, flow=spec.name, secret=secret_params(spec))
    rt.plan(version, bound)  # expanding validates mapped parameters
    return bound


def close_window(rt: Runtime, item: OutboxEntry) -> None:
    """The sweeper's handler of a window's timer: close the window when it is due (else re-arm
    the timer), start its run, move on the events it left out, then retire the timer."""
    wid = item.run_id
    run = retried(lambda: _close(rt, wid), what=f"window {wid}: closing")
    if run is None:
        return  # not due yet (re-armed), or gone
    if run.status is RunStatus.PENDING:
        begin(rt, wid)  # repeatable: a crash before it is redone when the timer fires again
    snap = rt.state.load(wid, None)
    if snap is None:
        return
    chosen = set(_chosen(snap.run) or ())
    k = int(str(snap.run.trigger.detail["window"]))
    left: list[str] = []
    for e in _events(snap.outbox):
        if e.id[len(EVENT) :] not in chosen:
            _join(rt, _windowed(e), k + 1)
        left.append(e.id)
    _set_head(rt, str(snap.run.trigger.detail["lane"]), k + 1)
    rt.state.commit(Commit(run_id=wid, outbox_done=[*left, CLOSE]))


def _close(rt: Runtime, wid: str) -> Run | None:
    snap = rt.state.load(wid, None)
    if snap is None:
        return None
    run = snap.run
    if _chosen(run) is not None:
        return run  # closed before (this is a repeat after a crash, or a late event's timer)
    events = _events(snap.outbox)
    if not events:
        return None  # an event's commit brings both its entry and the timer: none yet
    detail = run.trigger.detail
    batch = Batch.model_validate(detail["batch"]) if "batch" in detail else None
    now = rt.clock.now()
    if batch is not None:
        due = run.created_at + timedelta(seconds=batch.seconds)
        if len(events) >= batch.size:
            due = now
        chosen = events[: batch.size]
    else:
        last = max(_at(e) for e in events)
        due = last + timedelta(seconds=float(str(detail["debounce"])))
        chosen = events
    if due > now:
        rt.state.commit(Commit(run_id=wid, outbox_add=[_timer(wid, due)]))
        return None
    closed = _closed_run(rt, run, [_windowed(e) for e in chosen], batch is not None)
    rt.state.commit(Commit(run_id=wid, run=closed, run_etag=snap.run_etag))
    if rt.fault is not None:
        rt.fault("after-commit")
    LOGGER.info(
        "trigger window %s closed over %d event(s)",
        detail["window"],
        len(chosen),
        extra={"run_id": wid, "flow": run.flow, "function": "sweeper"},
    )
    return closed


def _closed_run(rt: Runtime, run: Run, chosen: list[Windowed], batched: bool) -> Run:
    """The window's run with its params from the chosen events (a batch's values as one list,
    a debounce's last event's params) and their ids; FAILED when they do not bind."""
    last = chosen[-1].req
    params = _params(batched, chosen[0].item_param, chosen)
    detail = {
        **last.trigger.detail,
        **run.trigger.detail,
        "opened_at": run.created_at.isoformat(),
        "events": [_event_key(w) for w in chosen],
    }
    trigger = last.trigger
    update: dict[str, object] = {
        "trigger": trigger.model_copy(update={"detail": detail}),
        "params": params,
        # The run as it starts is made at the close: a new created_at also keys the plan
        # caches (Runtime.plan_of) apart from any plan of the open window's params.
        "created_at": rt.clock.now(),
    }
    try:
        pinned = last.model_copy(update={"flow_version": run.flow_version})
        update["params"] = _bound(rt, pinned, params)
    except KumoflowError as e:
        if e.retryable:
            raise
        # Not bad input to leave looping: the window's events were each valid on their own.
        update |= {
            "status": RunStatus.FAILED,
            "ended_at": rt.clock.now(),
            "error": ErrorInfo(type=type(e).__qualname__, message=str(e)),
        }
    return run.model_copy(update=update)


def _claim(rt: Runtime, w: Windowed) -> int:
    """The window this event tries first, fixed by its first delivery (write-once): later
    windows only from there, so a duplicate meets its own marker on the way."""
    uri = f"gs://{rt.results_bucket}/_windows/{w.lane}/events/{_event_key(w)}"
    k = _head(rt, w.lane)
    while _full_or_closed(rt, w, k):
        k += 1
    try:
        rt.blobs.put(uri, str(k).encode(), "text/plain")
        return k
    except ConflictError:
        return int(rt.blobs.get(uri).decode())


def _full_or_closed(rt: Runtime, w: Windowed, k: int) -> bool:
    """A window an event need not try (a hint: joining it anyway would be moved on)."""
    wid = window_id(w.lane, k)
    snap = rt.state.load(wid, [])
    if snap is None:
        return False
    if _chosen(snap.run) is not None:
        return True
    if w.batch is None:
        return False
    count = rt.state.counters(wid, [COUNTER]).get(COUNTER, {}).get("events", 0)
    return count >= w.batch.size


def _join(rt: Runtime, w: Windowed, k: int) -> str:
    """Commit the event into window k, or the first one after it that keeps it."""
    key = _event_key(w)
    while True:
        wid = window_id(w.lane, k)
        if rt.state.load(wid, []) is None:
            rt.state.create_run(_open_run(rt, w, wid, k))
        _record(rt, w, wid)
        snap = rt.state.load(wid, [])
        if snap is None:
            raise NotFoundError(f"trigger window {wid} vanished")
        chosen = _chosen(snap.run)
        if chosen is None or key in chosen:
            return wid  # open (its close will see this event), or closed with it
        k += 1  # closed without it: on to the next


def _record(rt: Runtime, w: Windowed, wid: str) -> None:
    """The event's entry and marker in one commit (a duplicate's conflicts on the marker and
    writes nothing), then the close timer: once per window, by its first event, and again by
    any duplicate (the redelivery of an event that died before it wrote it). Not by every
    event: a burst would rewrite one document per event. A debounce's close re-arms itself
    from its events' times; a full batch's moves to now."""
    now = rt.clock.now()
    entry = OutboxEntry(
        id=EVENT + _event_key(w),
        run_id=wid,
        kind=OutboxKind.WINDOW,
        due_at=NEVER,
        timer=True,
        detail={"at": now.isoformat(), "windowed": _dump(w)},
    )
    try:
        counts = rt.state.commit(
            Commit(
                run_id=wid,
                markers=[entry.id],
                increments={COUNTER: {"events": 1}},
                outbox_add=[entry],
            )
        )
        n: int | None = counts[COUNTER]["events"]
    except ConflictError:
        n = None  # recorded before: a duplicate
    if rt.fault is not None and n is not None:
        rt.fault("after-commit")
    if n is None:
        n = rt.state.counters(wid, [COUNTER]).get(COUNTER, {}).get("events", 0)
    elif n != 1 and (w.batch is None or n != w.batch.size):
        return
    if w.batch is None:
        due = now + timedelta(seconds=w.debounce or 0)
    else:
        due = now if n >= w.batch.size else _batch_due(rt, w, wid)
    rt.state.commit(Commit(run_id=wid, outbox_add=[_timer(wid, due)]))


def _batch_due(rt: Runtime, w: Windowed, wid: str) -> datetime:
    assert w.batch is not None
    snap = rt.state.load(wid, [])
    start = snap.run.created_at if snap is not None else rt.clock.now()
    return start + timedelta(seconds=w.batch.seconds)


def _open_run(rt: Runtime, w: Windowed, wid: str, k: int) -> Run:
    settings: dict[str, object] = (
        {"debounce": w.debounce}
        if w.debounce is not None
        else {"batch": w.batch.model_dump(mode="json") if w.batch else None}
    )
    return Run(
        run_id=wid,
        flow=w.req.flow,
        flow_version=w.req.flow_version or "",
        # Valid params while open (its first event's, as a window of one), so that `runs show`
        # and the dashboard can plan it; the close sets the window's own.
        params=_params(w.batch is not None, w.item_param, [w]),
        created_at=rt.clock.now(),
        trigger=TriggerInfo(
            kind=w.req.trigger.kind,
            source=w.req.trigger.source,
            detail={"lane": w.lane, "window": k, **settings},
        ),
    )


def _timer(wid: str, due: datetime) -> OutboxEntry:
    return OutboxEntry(id=CLOSE, run_id=wid, kind=OutboxKind.WINDOW, due_at=due, timer=True)


def _chosen(run: Run) -> list[str] | None:
    """The events a closed window took; None while it is open."""
    events = run.trigger.detail.get("events")
    return [str(e) for e in events] if isinstance(events, list) else None


def _events(outbox: tuple[OutboxEntry, ...]) -> list[OutboxEntry]:
    """The window's events in the order they were recorded."""
    found = [e for e in outbox if e.kind is OutboxKind.WINDOW and e.id.startswith(EVENT)]
    return sorted(found, key=lambda e: (_at(e), e.id))


def _at(e: OutboxEntry) -> datetime:
    return datetime.fromisoformat(str(e.detail["at"]))


def _event_key(w: Windowed) -> str:
    return w.req.run_id or ""  # derived from the event's identity and the flow


def _dump(w: Windowed) -> str:
    return json.dumps(
        {
            "req": w.req.model_dump(mode="json"),
            "lane": w.lane,
            "debounce": w.debounce,
            "batch": w.batch.model_dump(mode="json") if w.batch else None,
            "item_param": w.item_param,
        }
    )


def _windowed(e: OutboxEntry) -> Windowed:
    raw = json.loads(str(e.detail["windowed"]))
    return Windowed(
        req=RunRequested.model_validate(raw["req"]),
        lane=raw["lane"],
        debounce=raw["debounce"],
        batch=Batch.model_validate(raw["batch"]) if raw["batch"] else None,
        item_param=raw["item_param"],
    )


def _head_uri(rt: Runtime, lane: str) -> str:
    return f"gs://{rt.results_bucket}/_windows/{lane}/head"


def _head(rt: Runtime, lane: str) -> int:
    try:
        return int(rt.blobs.get(_head_uri(rt, lane)).decode())
    except NotFoundError:
        return 0


def _set_head(rt: Runtime, lane: str, k: int) -> None:
    if _head(rt, lane) < k:  # a hint: a race that sets it back costs a few reads, no more
        rt.blobs.put(_head_uri(rt, lane), str(k).encode(), "text/plain", overwrite=True)
