"""TimerStore's two task-deadline queries, written once: each store answers them with one
`_tasks_due(field, ...)` over its own index (leases that ran out, dispatches nobody claimed)."""

from __future__ import annotations

from datetime import datetime

from orchestrator.contracts import TaskRun


class DueTasks:
    def expired_leases(
        self, now: datetime, limit: int = 100, after: TaskRun | None = None
    ) -> list[TaskRun]:
        return self._tasks_due("lease_until", now, limit, after)

    def stale_dispatches(
        self, now: datetime, limit: int = 100, after: TaskRun | None = None
    ) -> list[TaskRun]:
        return self._tasks_due("redispatch_at", now, limit, after)

    def _tasks_due(
        self, field: str, now: datetime, limit: int, after: TaskRun | None
    ) -> list[TaskRun]:
        """Task records whose `field` (a deadline) passed by `now`, by `field` then document,
        after the cursor `after`."""
        raise NotImplementedError
