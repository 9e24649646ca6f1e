"""Timers on the local stack fire through the Cloud Tasks stand-in, with the sweeper's tick
stopped: the retry delays of a flaky task are pushed to the sweeper on time (the lateness of
each push is printed; benchmarks/timers.py measures it over 200 timers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows.basic import retrying

pytestmark = pytest.mark.emulator


@pytest.fixture
def no_tick(dev: Any) -> Iterator[None]:
    """The sweeper's tick job taken off the stack's scheduler (it rereads its jobs file), so
    only a timer's own push can fire it."""
    from orchestrator import emulators
    from orchestrator.local import TICK_JOB

    jobs = emulators.read_jobs(dev.config)
    emulators.write_jobs(dev.config, [j for j in jobs if j.name != TICK_JOB])
    try:
        yield
    finally:
        emulators.write_jobs(dev.config, jobs)


def _dispatches(dev: Any) -> list[dict[str, Any]]:
    from orchestrator import emulators

    url = f"http://{dev.config.host}:{dev.config.cloudtasks_port}/dispatches"
    code, body = emulators.http_request("GET", url)
    assert code == 200
    found: list[dict[str, Any]] = json.loads(body)["dispatches"]
    return found


def test_retry_delays_fire_through_the_cloud_tasks_stand_in(
    emulator_backend: Any, dev: Any, no_tick: None, tmp_path: Path
) -> None:
    before = {d["name"] for d in _dispatches(dev)}
    counter = str(tmp_path / "counter")
    out = emulator_backend.run(
        retrying,
        {"counter": counter, "failures": 2, "after_counter": str(tmp_path / "after")},
        timeout=90,
    )
    assert out.status is RunStatus.SUCCEEDED
    record = out.tasks["flaky"]
    assert record.status is TaskStatus.SUCCEEDED
    first, second, third = record.attempts
    assert [a.status for a in (first, second)] == [TaskStatus.FAILED] * 2
    assert first.ended_at is not None
    assert second.started_at is not None
    assert second.ended_at is not None
    assert third.started_at is not None
    # retry_delay_seconds=[1, 2]: each retry starts after its delay (a push, not a tick).
    assert (second.started_at - first.ended_at).total_seconds() >= 1
    assert (third.started_at - second.ended_at).total_seconds() >= 2
    run_id = out.run.run_id
    pushed = [
        d
        for d in _dispatches(dev)
        if d["name"] not in before and d["headers"].get("ce-subject", "").startswith(run_id)
    ]
    # With the tick stopped, only these pushes can have fired the two retries.
    assert sorted(d["headers"]["ce-subject"] for d in pushed) == [
        f"{run_id}/dispatch-flaky-2",
        f"{run_id}/dispatch-flaky-3",
    ]
    assert [d["status"] for d in pushed] == [200, 200]
    late = [round((d["sent"] - d["scheduled"]) * 1000, 1) for d in pushed]
    print(f"\ntimer pushes, sent - due (ms): {late}")
