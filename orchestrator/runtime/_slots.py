"""Concurrency slots around an attempt's life, for every role (see engine.limits for the rules,
ports.LimitStore for where they are kept).

A slot is a lease in the store, held by one attempt (run, task, attempt number: duplicates of
that attempt share it, and the claim's fencing lets only one of them run):
- taken when the attempt is claimed (`hold`, before the claim commits); without a free slot the
  attempt stays QUEUED, its ticket in line, and nothing of it runs or polls;
- freed when the attempt ends, on the one path every end takes (control's complete_task:
  success, failure, lease expiry, deferred check), and by a redelivered completion (`free`,
  idempotent);
- renewed with the attempt's lease by the sweeper, which frees any slot whose attempt is over
  (a cancel, a crash between claim and commit, a lost wake-up) within one lease (`reclaim`).
Whoever frees a slot wakes the waiter it was handed to: its task request is sent again.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import TypeAdapter

from orchestrator.contracts import (
    FlowSpec,
    LimitKey,
    OutboxKind,
    Run,
    RunRequested,
    RunStatus,
    Slot,
    SlotHold,
    TaskOptions,
    TaskRequested,
    TaskRun,
    TaskStatus,
    Ticket,
    holder_of,
)
from orchestrator.errors import BadInputError
from orchestrator.ports import LimitStore
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._runtime import Runtime

# An attempt's states before its claim: queued, or a retry whose request went out at once.
_UNCLAIMED = (TaskStatus.QUEUED, TaskStatus.SCHEDULED)


def hold(
    rt: Runtime, run_id: str, key: str, attempt: int, options: TaskOptions
) -> tuple[bool, SlotHold | None]:
    """Take (or keep) a slot for the attempt: False when it waits in line for one; with the
    slot taken when the store says which (the claim records it on the attempt, for `free`)."""
    if options.concurrency is None:
        return True, None
    now = rt.clock.now()
    ticket = Ticket(
        key=options.concurrency,
        run_id=run_id,
        task=key,
        attempt=attempt,
        priority=options.priority,
        enqueued_at=now,
    )
    got = _store(rt).acquire(ticket, _lease(rt))
    wake(rt, got.woken)
    if not got.holds:
        LOGGER.info(
            "%s attempt %d waits for a slot of %r", key, attempt, options.concurrency,
            extra={"run_id": run_id, "task": key, "attempt": attempt},
        )  # fmt: skip
    return got.holds, got.hold


def free(rt: Runtime, run_id: str, task: TaskRun, attempt: int, options: TaskOptions) -> None:
    """The attempt is over: its slot (or its place in line) goes to the next waiter. The slot
    its claim recorded (Attempt.slot) lets the store free it without looking it up."""
    if options.concurrency is None:
        return
    held = next((a.slot for a in task.attempts if a.number == attempt), None)
    holder = holder_of(run_id, task.key, attempt)
    wake(rt, _store(rt).release(options.concurrency, holder, _lease(rt), held))


def keyed(options: TaskOptions, task: TaskRun, attempt: int) -> TaskOptions:
    """The options with the key attempt `attempt` took its slot under: a key computed from
    its inputs is recorded on the attempt (runtime._keys); without one it held no slot."""
    if not options.computed_concurrency:
        return options
    key = next((a.slot_key for a in task.attempts if a.number == attempt), None)
    return options.model_copy(update={"concurrency": key})


def wake(rt: Runtime, tickets: Sequence[Ticket]) -> None:
    """Send again the requests of attempts a slot was handed to. A ticket whose attempt no
    longer waits (its run was cancelled or resumed, the task moved on) gives its slot on at
    once, so no slot stays with an attempt that will never claim it. A lost wake-up costs one
    lease: the sweeper sees the reserved slot unclaimed and wakes the attempt again."""
    pending = list(tickets)
    while pending:
        t = pending.pop(0)
        if t.task == RUN_SLOT:
            pending.extend(_wake_run(rt, t))
            continue
        snap = rt.state.load(t.run_id, [t.task])
        task = snap.tasks.get(t.task) if snap is not None else None
        if snap is None or snap.run.status is not RunStatus.RUNNING or not _queued(task, t):
            pending.extend(_store(rt).release(t.key, t.holder, _lease(rt)))
            continue
        event = TaskRequested(
            run_id=t.run_id, flow_version=snap.run.flow_version, key=t.task, attempt=t.attempt
        )
        rt.bus.publish(
            rt.topics.tasks,
            rt.envelope(
                event,
                event_id=f"{t.run_id}/{t.task}/{t.attempt}/slot-{rt.clock.now().timestamp()}",
                subject=t.task,
                code=rt.spec(snap.run.flow_version).bundle,
            ),
        )


def reclaim(rt: Runtime, slot: Slot) -> bool:
    """A slot whose lease ran out: renewed while its attempt runs (or was handed to it and not
    yet claimed: then woken again), freed otherwise. True when it changed anything."""
    if slot.task == RUN_SLOT:
        return _reclaim_run(rt, slot)
    tasks, _ = rt.state.tasks(slot.run_id, [slot.task])
    task = tasks.get(slot.task)
    ticket = _ticket_of(slot)
    if _queued(task, ticket):  # handed the slot, never claimed it: its wake-up was lost
        wake(rt, [ticket])
    if _queued(task, ticket) or (
        task is not None and task.attempt == slot.attempt and not task.status.terminal
    ):
        got = _store(rt).acquire(_ticket_of(slot), _lease(rt))
        wake(rt, got.woken)
        return got.holds
    wake(rt, _store(rt).release(slot.key, slot.holder, _lease(rt)))
    return True


def _queued(task: TaskRun | None, ticket: Ticket) -> bool:
    """Whether the ticket's attempt still waits to be claimed. A first attempt may have no
    record yet (a claim creates it)."""
    if task is None:
        return ticket.attempt == 1
    last = task.attempts[-1] if task.attempts else None
    return (
        last is not None
        and last.number == ticket.attempt
        and not task.status.terminal
        and last.status in _UNCLAIMED
    )


def _ticket_of(slot: Slot) -> Ticket:
    return Ticket(
        key=slot.key,
        run_id=slot.run_id,
        task=slot.task,
        attempt=slot.attempt,
        enqueued_at=slot.lease_until,
    )


def _lease(rt: Runtime) -> datetime:
    return rt.clock.now() + timedelta(seconds=rt.lease_seconds)


def _store(rt: Runtime) -> LimitStore:
    if rt.limits is None:
        raise BadInputError("a task with a concurrency key ran on a runtime without limits")
    return rt.limits


def set_limit(rt: Runtime, key: str, limit: int | None) -> None:
    """`kumoflow limits set|rm`: a raised (or removed) limit wakes the waiters it serves."""
    wake(rt, _store(rt).set_limit(key, limit, _lease(rt)))


def waiting_for(rt: Runtime, run_id: str) -> dict[str, str]:
    """The tasks of a run that wait in line for a slot: task key -> concurrency key (what
    `runs show` and the dashboard say of a queued task)."""
    return {t.task: t.key for t in _waiters(rt) if t.run_id == run_id}


def _waiters(rt: Runtime) -> list[Ticket]:
    """Every ticket in line, of every key (one read of the limits)."""
    if rt.limits is None:
        return []
    return [t for state in rt.limits.limit_states() for t in state.waiting]


# --- run slots: @flow(max_active_runs=N) -----------------------------------------------------
# A run of such a flow holds one slot of run_key(flow) from its start to its end, on the same
# machinery as an attempt's: its ticket is the run's (task RUN_SLOT, attempt 0, the run's
# priority, enqueued when the run was created); it is taken in control's begin (the run stays
# PENDING without one), freed on the run's one end path (its FINISH entry, done by the handler
# that ended it or adopted by the sweep), renewed or freed by the sweeper's reclaim like any
# slot, and a slot handed to a waiting run sends its start again (run.requested, its run id).

RUN_SLOT = "(run)"
# The (key, limit) pairs this process saw set, per store: a run start reads a key's state (all
# of its slots and waiters) only the first time, not once per run.
_CONFIRMED: weakref.WeakKeyDictionary[LimitStore, set[tuple[str, int]]] = (
    weakref.WeakKeyDictionary()
)
_KEY: TypeAdapter[str] = TypeAdapter(LimitKey)


def run_key(flow: str) -> str:
    """The concurrency key of a flow's run slots (ValueError: a name no key can hold)."""
    return _KEY.validate_python(f"flow:{flow}")


def _run_ticket(run: Run) -> Ticket:
    return Ticket(
        key=run_key(run.flow),
        run_id=run.run_id,
        task=RUN_SLOT,
        attempt=0,
        priority=run.priority,
        enqueued_at=run.created_at,
    )


def take_run_slot(rt: Runtime, run: Run, spec: FlowSpec) -> bool:
    """Take (or keep) a run slot for `run`: False when it waits in line for one. The limit is
    the flow's own (set here when it differs: a deploy of a new version changes it)."""
    limit = spec.options.max_active_runs
    if limit is None:
        return True
    store, key = _store(rt), run_key(run.flow)
    confirmed = _CONFIRMED.setdefault(store, set())
    if (key, limit) not in confirmed:  # once per process and store: a key's state is O(line)
        states = store.limit_states(key)
        if not states or states[0].limit != limit:
            wake(rt, store.set_limit(key, limit, _lease(rt)))
        confirmed.add((key, limit))
    got = store.acquire(_run_ticket(run), _lease(rt))
    wake(rt, got.woken)
    if not got.holds:
        LOGGER.info(
            "run %s waits for a run slot of %r", run.run_id, run.flow, extra={"run_id": run.run_id}
        )
    return got.holds


def free_run_slot(rt: Runtime, run: Run, spec: FlowSpec) -> None:
    """The run ended: its run slot (or its place in line) goes to the next run."""
    if spec.options.max_active_runs is None:
        return
    ticket = _run_ticket(run)
    wake(rt, _store(rt).release(ticket.key, ticket.holder, _lease(rt)))


def _wake_run(rt: Runtime, t: Ticket) -> list[Ticket]:
    """Send again the start of a run a slot was handed to; a run that ended meanwhile gives it
    on (the tickets it goes to), one that runs already keeps it."""
    snap = rt.state.load(t.run_id, [])
    if snap is None or snap.run.status.terminal:
        return _store(rt).release(t.key, t.holder, _lease(rt))
    run = snap.run
    if run.status is RunStatus.PENDING:
        req = RunRequested(
            flow=run.flow,
            flow_version=run.flow_version,
            params=run.params,
            run_id=run.run_id,
            trigger=run.trigger,
            priority=run.priority,
        )
        event_id = f"{run.run_id}/run-slot-{rt.clock.now().timestamp()}"
        rt.bus.publish(rt.topics.runs, rt.envelope(req, event_id=event_id, subject=run.flow))
    return []


def _reclaim_run(rt: Runtime, slot: Slot) -> bool:
    """A run slot whose lease ran out: renewed while its run has not ended (a PENDING run was
    handed it and its start was lost: sent again), freed once it has."""
    snap = rt.state.load(slot.run_id, [])
    if snap is not None and not snap.run.status.terminal:
        if snap.run.status is RunStatus.PENDING:
            _wake_run(rt, _ticket_of(slot))
        got = _store(rt).acquire(_ticket_of(slot), _lease(rt))
        wake(rt, got.woken)
        return got.holds
    wake(rt, _store(rt).release(slot.key, slot.holder, _lease(rt)))
    return True


def resumable(rt: Runtime, run_id: str, attempt: int) -> bool:
    """A resume of an ended run of a limited flow (`runs retry`) takes a run slot first. With
    none free it is refused (False), leaving no place in line: the operator retries it later.
    Refused too while the end it resumes is still being announced (its FINISH entry, which
    frees the slot, not yet done), so that late free cannot take the resumed run's slot."""
    snap = rt.state.load(run_id, [])
    if snap is None or not snap.run.status.terminal or snap.run.attempt != attempt:
        return True  # a stale resume: the engine makes it a no-op
    spec = rt.spec(snap.run.flow_version)
    if spec.options.max_active_runs is None:
        return True
    whole = rt.state.load(run_id, None)  # its outbox (a resume reads the whole run anyway)
    if whole is None or any(e.kind is OutboxKind.FINISH for e in whole.outbox):
        return False
    if take_run_slot(rt, snap.run, spec):
        return True
    free_run_slot(rt, snap.run, spec)  # its place in line too
    return False


def waiting_runs(rt: Runtime) -> dict[str, str]:
    """Runs in line for a run slot of their flow (PENDING, max_active_runs): run id -> key
    (what `runs ls` says of them; one read of the limits for a whole page of runs)."""
    return {t.run_id: t.key for t in _waiters(rt) if t.task == RUN_SLOT}
