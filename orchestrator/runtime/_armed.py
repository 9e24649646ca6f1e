"""Timers armed where they are committed: every outbox timer (retry delays, run timeouts, the
hourly recheck, a deferred check's next poll, and whatever waits are added later) gets a push
at its due time from a TimerQueue, right after the commit that records it.

This is the one place timers are armed, so nothing that adds a timer needs to know about it:
the state store is wrapped (`ArmedState`), and every commit's `outbox_add` timers are scheduled
once the commit went through. Scheduling is best effort by design: a crash between the commit
and the scheduling, or a Cloud Tasks outage, leaves the timer to the sweeper's tick (every
minute in the cloud), which stays the rescue path; a push that arrives twice, early or late
fires through the same idempotent code as the tick (sweeper.fire_timer).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from orchestrator.contracts import OutboxEntry, Run, TaskRun
from orchestrator.ports import Clock, Commit, Counts, Etag, Snapshot, StateStore, TimerQueue
from orchestrator.runtime._logging import LOGGER

# Cloud Tasks schedules at most 30 days ahead: a later timer is left to the sweep.
HORIZON = timedelta(days=30) - timedelta(minutes=5)


def to_arm(entries: Sequence[OutboxEntry], now: datetime) -> list[OutboxEntry]:
    """The timers among `entries` that a push should fire: not due yet (the committing
    handler does what is due at once) and within the queue's horizon."""
    return [e for e in entries if e.timer and now < e.due_at <= now + HORIZON]


class ArmedState:
    """A StateStore that arms the timers each commit adds (see the module's docstring)."""

    def __init__(self, inner: StateStore, queue: TimerQueue, clock: Clock) -> None:
        self.inner = inner
        self.queue = queue
        self._clock = clock

    def commit(self, commit: Commit) -> Counts:
        counts = self.inner.commit(commit)  # a conflict raises: nothing was written, nothing armed
        timers = to_arm(commit.outbox_add, self._clock.now())
        if timers:
            try:
                self.queue.arm(timers)
            except Exception:  # the sweep fires them; the commit stands
                LOGGER.warning(
                    "could not arm %d timer(s) of run %s; the sweeper's tick fires them",
                    len(timers),
                    commit.run_id,
                    exc_info=True,
                    extra={"run_id": commit.run_id},
                )
        return counts

    def create_run(self, run: Run) -> bool:
        return self.inner.create_run(run)

    def load(self, run_id: str, keys: Sequence[str] | None = None) -> Snapshot | None:
        return self.inner.load(run_id, keys)

    def tasks(self, run_id: str, keys: Sequence[str]) -> tuple[dict[str, TaskRun], dict[str, Etag]]:
        return self.inner.tasks(run_id, keys)

    def counters(self, run_id: str, names: Sequence[str]) -> Counts:
        return self.inner.counters(run_id, names)

    def list_runs(
        self, flow: str | None = None, limit: int = 50, before: datetime | None = None
    ) -> list[Run]:
        return self.inner.list_runs(flow, limit, before)
