"""One way to run a flow and look at the outcome, on either backend."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from contracts import Run, RunRequested, RunStatus, TaskRun
from orchestrator import Flow, run_in_process
from orchestrator._memory import VirtualClock


@dataclass
class Outcome:
    run: Run
    tasks: dict[str, TaskRun]
    value: Any

    @property
    def status(self) -> RunStatus:
        return self.run.status


class MemoryBackend:
    name = "memory"
    realtime = False

    def run(self, flow: Flow[Any, Any], params: dict[str, Any], timeout: float = 60) -> Outcome:
        outcome = run_in_process(flow, params, clock=VirtualClock())
        return Outcome(outcome.run, outcome.tasks, outcome.value)


class EmulatorBackend:
    name = "emulator"
    realtime = True

    def __init__(self) -> None:
        from orchestrator._cli_cloud import cloud_runtime

        self.rt, self.store = cloud_runtime()

    def start(self, flow: Flow[Any, Any], params: dict[str, Any]) -> str:
        version = self.store.put_flow(flow.spec)
        run_id = uuid.uuid4().hex[:20]
        self.rt.publish(
            self.rt.topics.runs,
            RunRequested(
                flow=flow.spec.name,
                flow_version=version,
                params=params,
                run_id=run_id,
            ),
            event_id=f"test-{run_id}",
        )
        return run_id

    def wait(self, run_id: str, timeout: float = 60) -> Outcome:
        from orchestrator._cli_cloud import follow
        from orchestrator._values import decode

        snap = follow(self.rt, run_id, timeout=timeout)
        value = None
        if snap.run.status is RunStatus.SUCCEEDED and snap.run.result_uri:
            value = decode(self.rt.blobs.get(snap.run.result_uri), snap.run.result_uri)
        return Outcome(snap.run, snap.tasks, value)

    def run(self, flow: Flow[Any, Any], params: dict[str, Any], timeout: float = 60) -> Outcome:
        return self.wait(self.start(flow, params), timeout)
