"""The engine's vocabulary: the events it takes, the commands it returns, the state it reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.contracts import ErrorInfo, Run, RunStatus, TaskFailed, TaskRun, TaskSucceeded
from orchestrator.engine._plan import Plan

# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartRun:
    pass


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Re-derive what is ready, skipped or finished; also checks the run's timeout.

    `armed`: the (key, attempt) of the dispatches the run's outbox holds (a retry timer, even a
    quarantined one, or a request not yet sent); a task waiting on a dispatch that is not there
    is armed again. None: not known (nothing is re-armed)."""

    armed: frozenset[tuple[str, int]] | None = None


@dataclass(frozen=True, slots=True)
class CancelRun:
    reason: str = "cancelled by request"


@dataclass(frozen=True, slots=True)
class ResumeRun:
    """Resume a FAILED or CANCELLED run as flow attempt `attempt + 1`: what failed, was skipped
    or cancelled runs again; succeeded tasks keep their results. A no-op unless the run is
    still ended in flow attempt `attempt` (a repeated request resumes it once)."""

    attempt: int


@dataclass(frozen=True, slots=True)
class LeaseExpired:
    """The sweeper saw attempt `attempt` of `key` stop renewing its lease (claim `token`)."""

    key: str
    attempt: int
    token: str


Event = StartRun | Reconcile | CancelRun | ResumeRun | TaskSucceeded | TaskFailed | LeaseExpired


# --- outputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dispatch:
    key: str
    attempt: int
    not_before: datetime | None = None  # a retry's due time; None: publish now


# A queued attempt nobody claimed this long after is requested again (claims dedupe).
REDISPATCH_AFTER = timedelta(minutes=10)
# A running run is re-derived from its whole state this often (a sweep timer): the rescue of a
# run whose last event was lost for good (Pub/Sub gave up redelivering it). O(run), hourly.
RECHECK_AFTER = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Deliver a Reconcile to this run at `at` (run timeouts)."""

    at: datetime


@dataclass(frozen=True, slots=True)
class FinishRun:
    """Announce the end of flow attempt `attempt` (a resumed run ends more than once)."""

    status: RunStatus
    error: ErrorInfo | None
    attempt: int = 1


Command = Dispatch | WakeAt | FinishRun


@dataclass(frozen=True, slots=True)
class RunState:
    run: Run
    tasks: Mapping[str, TaskRun]

    def task(self, plan: Plan, key: str) -> TaskRun:
        found = self.tasks.get(key)
        if found is not None:
            return found
        planned = plan.tasks[key]
        return TaskRun(
            run_id=self.run.run_id,
            key=key,
            node=planned.node.key,
            name=planned.node.options.name,
            map_index=planned.map_index,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    state: RunState
    changed: frozenset[str]  # task keys whose records changed
    run_changed: bool
    commands: tuple[Command, ...]
