"""Run a flow and look at the outcome, in memory or on the local stack, through one interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.adapters import MemoryBlobStore, MemoryStore, VirtualClock
from orchestrator.contracts import Run, RunStatus, TaskRun
from orchestrator.runtime import (
    InProcessRunner,
    RunOutcome,
    Runtime,
    memory_runtime,
    read_flow_result,
)
from orchestrator.sdk import Flow


@dataclass
class Outcome:
    run: Run
    tasks: dict[str, TaskRun]
    value: Any

    @property
    def status(self) -> RunStatus:
        return self.run.status


class Backend(Protocol):
    name: str
    realtime: bool  # False: retry delays and timeouts are skipped, not waited for
    rt: Runtime  # over the backend's stores: read runs, logs and dead letters through it

    def run(self, flow: Flow[Any, Any], params: dict[str, Any], timeout: float = 60) -> Outcome: ...
    def retry(self, flow: Flow[Any, Any], run_id: str, timeout: float = 60) -> Outcome:
        """Resume a failed or cancelled run (`kumoflow runs retry`) and wait for its end."""
        ...


class MemoryBackend:
    """In-process, on a virtual clock: retry delays cost nothing. Its runs share one store,
    so they can be read (and resumed) after they end."""

    name = "memory"
    realtime = False

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.blobs = MemoryBlobStore()
        self.rt = memory_runtime(store=self.store, blobs=self.blobs)

    def _runner(self, flow: Flow[Any, Any]) -> InProcessRunner:
        return InProcessRunner(
            clock=VirtualClock(), functions=flow.functions(), store=self.store, blobs=self.blobs
        )

    def run(self, flow: Flow[Any, Any], params: dict[str, Any], timeout: float = 60) -> Outcome:
        del timeout  # a virtual clock never waits
        with self._runner(flow) as runner:
            return _outcome(runner.run(flow.spec, params))

    def retry(self, flow: Flow[Any, Any], run_id: str, timeout: float = 60) -> Outcome:
        del timeout
        with self._runner(flow) as runner:
            return _outcome(runner.resume(run_id))


def _outcome(outcome: RunOutcome) -> Outcome:
    return Outcome(outcome.run, outcome.tasks, outcome.value)


class StackBackend:
    """The running local stack: the run is requested on Pub/Sub exactly as a producer would."""

    name = "emulator"
    realtime = True

    def __init__(self) -> None:
        from orchestrator.local import stack_runtime

        self.rt = stack_runtime()

    def start(self, flow: Flow[Any, Any], params: dict[str, Any]) -> str:
        from orchestrator.local import submit

        return submit(self.rt, flow, params)

    def wait(self, run_id: str, timeout: float = 60) -> Outcome:
        from orchestrator.local import follow

        snap = follow(self.rt, run_id, timeout=timeout)
        value = None
        if snap.run.status is RunStatus.SUCCEEDED:
            plan = self.rt.plan_of(snap.run)
            value = read_flow_result(self.rt, plan, snap.run)
        return Outcome(snap.run, snap.tasks, value)

    def run(self, flow: Flow[Any, Any], params: dict[str, Any], timeout: float = 60) -> Outcome:
        return self.wait(self.start(flow, params), timeout)

    def retry(self, flow: Flow[Any, Any], run_id: str, timeout: float = 60) -> Outcome:
        from orchestrator.local import retry_run

        del flow  # its workers import it
        retry_run(self.rt, run_id)
        return self.wait(run_id, timeout)
