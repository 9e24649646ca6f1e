"""A map under `rate="e2e-paced:10/s"` on the local stack: no window of one second holds more
than 10 starts (from the attempts' own claim times), every item runs, and the observed rate
is printed beside the configured one. Attempts over the rate wait as timers (Cloud Tasks'
stand-in, the sweeper behind it) with nothing polling."""

from __future__ import annotations

import os
from typing import Any

import pytest

from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows.paced import RATE, most_in_a_window, paced_map, starts, sustained

pytestmark = pytest.mark.emulator
WIDTH = int(os.environ.get("KUMOFLOW_RATES_E2E_WIDTH", "30"))


def test_a_map_under_a_rate_starts_no_faster_than_the_rate_and_every_item_runs(
    emulator_backend: Any,
) -> None:
    out = emulator_backend.run(paced_map, {"items": list(range(WIDTH))}, timeout=300)
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == sum(range(WIDTH))
    items = [t for k, t in out.tasks.items() if k.startswith("paced-item[")]
    assert len(items) == WIDTH
    assert all(t.status is TaskStatus.SUCCEEDED for t in items)
    times = starts(items)
    peak = most_in_a_window(times, RATE.period)
    span = (times[-1] - times[0]).total_seconds()
    observed = sustained(times, RATE.period)
    print(f"{WIDTH} starts at {RATE}: at most {peak} in a window, {observed:.2f}/s after the burst")
    assert peak <= RATE.count
    # No more than the count in any window: the last start comes periods after the first.
    assert span >= (WIDTH - 1) // RATE.count * RATE.period.total_seconds()
