"""A worker killed mid-task on the local stack: its lease runs out, the sweeper fails that
attempt, the retry runs, and the run ends with one stored result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows.crashy import worker_dies

pytestmark = pytest.mark.emulator
LEASE_S = "3"


@pytest.fixture
def short_leases(dev: Any) -> Iterator[None]:
    """The worker and the sweeper with 3 s leases, so a dead worker is noticed in seconds."""
    from orchestrator import emulators
    from orchestrator.local import FUNCTIONS, FUNCTIONS_SOURCE

    def restart(env: dict[str, str]) -> None:
        for fn in FUNCTIONS:
            if fn.name in ("task_worker", "sweeper"):
                emulators.start_function(
                    dev.config,
                    fn.name.replace("_", "-"),
                    target=fn.name,
                    source=FUNCTIONS_SOURCE,
                    port=dev.functions_port + fn.local_port_offset,
                    env=dev.function_env() | env,
                )

    restart({"KUMOFLOW_LEASE_S": LEASE_S})
    try:
        yield
    finally:
        restart({})


def test_a_worker_killed_mid_task_ends_in_one_stored_result(
    emulator_backend: Any, short_leases: None, tmp_path: Path
) -> None:
    out = emulator_backend.run(worker_dies, {"folder": str(tmp_path), "x": 4}, timeout=120)
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == 40
    record = out.tasks["dies-once"]
    assert record.status is TaskStatus.SUCCEEDED
    first, second = record.attempts  # the takeover was a new attempt, counted against retries
    assert first.status is TaskStatus.FAILED
    assert first.error is not None
    assert first.error.type == "LeaseExpired"
    assert second.status is TaskStatus.SUCCEEDED
    assert (tmp_path / "runs").read_text() == "xx"  # attempt 1 died in user code, 2 finished
