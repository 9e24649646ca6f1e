"""Running a flow in-process: the runtime's in-memory runner, given a flow's spec and functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.ports import Clock
from orchestrator.runtime import DEFAULT_WORKERS, InProcessRunner, Progress, RunOutcome

if TYPE_CHECKING:
    from orchestrator.sdk._decorators import Flow


def run_in_process(
    flow: Flow[Any, Any],
    params: dict[str, Any],
    *,
    clock: Clock | None = None,
    progress: Progress | None = None,
    max_workers: int = DEFAULT_WORKERS,
) -> RunOutcome:
    """Run `flow` with `params` in this process (no server, no cloud) and return its outcome."""
    with InProcessRunner(
        clock=clock, max_workers=max_workers, functions=flow.functions()
    ) as runner:
        return runner.run(flow.spec, params, progress=progress)
