"""Every topic name kumoflow uses: one home, read by the services, the local stack and infra."""

from __future__ import annotations

from dataclasses import dataclass, fields

from orchestrator.adapters import NAME_PREFIX


@dataclass(frozen=True)
class Topics:
    runs: str = "kumoflow-run-requests"  # run.requested -> run_starter
    tasks: str = "kumoflow-task-requests"  # task.requested -> task_worker
    events: str = "kumoflow-task-events"  # task.succeeded/failed -> orchestrator
    finished: str = "kumoflow-run-events"  # run.succeeded/failed -> whoever listens
    ticks: str = "kumoflow-timer-ticks"  # Cloud Scheduler publishes here; the sweeper fires timers
    schedules: str = "kumoflow-schedules"  # every schedule's Scheduler job publishes here
    dead_letter: str = "kumoflow-dead-letter"  # Pub/Sub's dead-letter policy forwards here

    def all(self) -> tuple[str, ...]:
        """The topics of kumoflow's own events (the stack also creates ticks and dead_letter)."""
        return (self.runs, self.tasks, self.events, self.finished)

    def named(self, prefix: str) -> Topics:
        """These topics as an installation with another name prefix has them (infra's
        var.name_prefix replaces the leading "kumoflow" of every name)."""
        return Topics(
            **{
                f.name: prefix + getattr(self, f.name).removeprefix(NAME_PREFIX)
                for f in fields(self)
            }
        )


TOPICS = Topics()
