"""Job executions in memory (the JobRunner port): in-process runs run each on a thread of its
own; the interleaving tests leave them pending and end them step by step."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orchestrator.errors import NotFoundError
from orchestrator.ports import JobExecution, JobState, JobStatus

TASK_JOB_ENV = "KUMOFLOW_TASK_JOB"  # the installation's job: projects/P/locations/R/jobs/NAME
Entry = Callable[[Mapping[str, str]], int]  # an execution's entrypoint: env in, exit code out


@dataclass
class _Execution:
    env: dict[str, str]
    status: JobStatus


class MemoryJobs:
    """With an `entry`, each execution runs it on a daemon thread; without, it stays RUNNING
    until `finish` (a test's step)."""

    def __init__(self, entry: Entry | None = None) -> None:
        self._entry = entry
        self._executions: dict[str, _Execution] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def bind(self, entry: Entry | None) -> None:
        """Run executions with `entry` from now on (the runtime it runs on is built after)."""
        self._entry = entry

    def start(self, env: Mapping[str, str]) -> JobExecution:
        with self._lock:
            name = f"memory/jobs/kumoflow-tasks/executions/{next(self._ids)}"
            self._executions[name] = _Execution(dict(env), JobStatus(JobState.RUNNING))
        if self._entry is not None:
            entry = self._entry
            threading.Thread(
                target=self._run, args=(name, entry), daemon=True, name="kumoflow-job"
            ).start()
        return JobExecution(name)

    def _run(self, name: str, entry: Entry) -> None:
        try:
            code = entry(self._executions[name].env)
        except BaseException as e:  # the process would have died
            self.finish(name, 1, f"failed: {type(e).__name__}: {e}")
            return
        self.finish(name, code)

    def status(self, name: str) -> JobStatus:
        found = self._executions.get(name)
        if found is None:
            raise NotFoundError(f"no job execution {name!r}")
        return found.status

    def cancel(self, name: str) -> None:
        # A thread cannot be stopped: its token is stale once the attempt is cancelled, so
        # whatever it still does is ignored (as a Cloud Run execution killed mid-report).
        self.finish(name, 1, "was cancelled")

    def finish(self, name: str, code: int, message: str = "") -> None:
        """End `name` as its process would, with exit `code` (nothing if it has ended)."""
        with self._lock:
            found = self._executions[name]
            if found.status.state is not JobState.RUNNING:
                return
            state = JobState.SUCCEEDED if code == 0 else JobState.FAILED
            found.status = JobStatus(state, message or f"exited with code {code}")

    def running(self) -> dict[str, dict[str, str]]:
        """The executions still running, with their env."""
        with self._lock:
            return {
                n: dict(e.env)
                for n, e in self._executions.items()
                if e.status.state is JobState.RUNNING
            }

    def env(self, name: str) -> dict[str, str]:
        return dict(self._executions[name].env)

    def cancelled(self, name: str) -> bool:
        return self.status(name).message == "was cancelled"
