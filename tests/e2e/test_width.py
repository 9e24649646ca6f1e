"""The core at width and under concurrency, on the local stack: a 1,000-wide fan-in, and
several concurrent runs of a 30-leaf map with every message delivered twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows.basic import wide_map

pytestmark = pytest.mark.emulator


def test_a_thousand_wide_fan_in(emulator_backend: Any) -> None:
    items = list(range(1000))
    out = emulator_backend.run(wide_map, {"items": items, "factor": 2}, timeout=600)
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == 2 * sum(items)
    assert len(out.tasks) == 1001
    assert all(t.status is TaskStatus.SUCCEEDED for t in out.tasks.values())
    assert all(len(t.attempts) == 1 for t in out.tasks.values())


def test_concurrent_runs_with_every_message_twice_all_finish(
    emulator_backend: Any, doubled: None
) -> None:
    runs = [list(range(i, i + 30)) for i in (0, 100, 200, 300)]
    run_ids = [emulator_backend.start(wide_map, {"items": items, "factor": 3}) for items in runs]
    with ThreadPoolExecutor(len(run_ids)) as pool:
        outs = list(pool.map(lambda r: emulator_backend.wait(r, timeout=300), run_ids))
    for items, out in zip(runs, outs, strict=True):
        assert out.status is RunStatus.SUCCEEDED
        assert out.value == 3 * sum(items)
        # Every task ended exactly once, in its first attempt, despite every message twice.
        assert len(out.tasks) == 31
        assert all(t.status is TaskStatus.SUCCEEDED for t in out.tasks.values())
        assert all(len(t.attempts) == 1 for t in out.tasks.values())
