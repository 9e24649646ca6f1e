"""A wide map under `concurrency=KEY` with a limit of 10 on the local stack, its workers killed
at random (SIGKILL mid-attempt): the run completes, at most 10 attempts ever run at once (from
the attempts' own start and end times), and every slot is free at the end.

The width is KUMOFLOW_LIMITS_E2E_WIDTH (default 1,000), the limit KUMOFLOW_LIMITS_E2E_LIMIT
(default 10). On a 2-core machine the stack itself runs about 4 attempts at once, so a limit
of 10 does not bind there: run it with a limit of 2 too, to see the limit hold the map back."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from orchestrator.contracts import RunStatus
from orchestrator.runtime import run_key, set_limit
from tests.e2e.test_worker_crash import short_leases
from tests.flows.limited import (
    KEY,
    MAX_ACTIVE,
    REGIONS,
    limited_map,
    most_at_once,
    most_at_once_by,
    most_runs_at_once,
    region_key,
    regional_map,
    two_at_a_time,
)

pytestmark = pytest.mark.emulator
LIMIT = int(os.environ.get("KUMOFLOW_LIMITS_E2E_LIMIT", "10"))
WIDTH = int(os.environ.get("KUMOFLOW_LIMITS_E2E_WIDTH", "1000"))
KILLS = 5

__all__ = ["short_leases"]  # the fixture, used by name


@pytest.mark.parametrize(
    ("width", "limit"),
    [(WIDTH, LIMIT)],  # KUMOFLOW_LIMITS_E2E_LIMIT=2 WIDTH=200: a limit that binds on 2 cores
    ids=["as-configured"],
)
def test_a_wide_map_under_a_limit_never_runs_more_than_the_limit_and_leaks_no_slot(
    emulator_backend: Any, short_leases: None, width: int, limit: int
) -> None:
    rt = emulator_backend.rt
    set_limit(rt, KEY, limit)
    try:
        kill = random.Random(15).sample(range(width), KILLS)
        out = emulator_backend.run(
            limited_map, {"items": list(range(width)), "kill": kill}, timeout=900
        )
        assert out.status is RunStatus.SUCCEEDED
        assert out.value == sum(range(width))
        items = [t for k, t in out.tasks.items() if k.startswith("limited-item[")]
        assert len(items) == width
        killed = [t.key for t in items if len(t.attempts) > 1]
        assert len(killed) >= KILLS  # each chosen item's first attempt died and was retried
        peak = most_at_once(items)
        print(f"width {width}, limit {limit}: at most {peak} attempts ran at once")
        assert 1 <= peak <= limit
        [state] = rt.limits.limit_states(KEY)
        assert (state.in_use, state.waiters) == (0, 0)
    finally:
        set_limit(rt, KEY, None)


def test_a_key_computed_from_the_inputs_runs_one_attempt_per_key_at_once(
    emulator_backend: Any,
) -> None:
    rt = emulator_backend.rt
    for region in REGIONS:
        set_limit(rt, region_key(region), 1)
    try:
        items = list(range(12))
        regions = [REGIONS[i % 2] for i in items]
        out = emulator_backend.run(regional_map, {"items": items, "regions": regions}, timeout=300)
        assert out.status is RunStatus.SUCCEEDED
        assert out.value == sum(items)
        calls = [t for k, t in out.tasks.items() if k.startswith("regional-call[")]
        assert len(calls) == len(items)
        # The key each attempt held (recorded at its claim) is its region's: one at a time each.
        assert {t.attempts[-1].slot_key for t in calls} == {region_key(r) for r in REGIONS}
        assert most_at_once_by(calls) == {region_key(r): 1 for r in REGIONS}
        for region in REGIONS:
            [state] = rt.limits.limit_states(region_key(region))
            assert (state.in_use, state.waiters) == (0, 0)
    finally:
        for region in REGIONS:
            set_limit(rt, region_key(region), None)


def test_a_flow_with_max_active_runs_never_runs_more_at_once_and_starts_every_run(
    emulator_backend: Any,
) -> None:
    """Six runs of a flow with max_active_runs=2 started at once: at most two run at a time
    (from the runs' own start and end times), the others wait PENDING and each starts as one
    ends; all of them end, and no run slot is left taken."""
    rt = emulator_backend.rt
    run_ids = [emulator_backend.start(two_at_a_time, {"i": i, "seconds": 1.0}) for i in range(6)]
    outs = [emulator_backend.wait(run_id, 180) for run_id in run_ids]
    assert [o.status for o in outs] == [RunStatus.SUCCEEDED] * 6
    assert sorted(o.value for o in outs) == list(range(6))
    runs = [rt.state.load(run_id, []).run for run_id in run_ids]
    peak = most_runs_at_once(runs)
    print(f"6 runs, max_active_runs={MAX_ACTIVE}: at most {peak} ran at once")
    assert peak == MAX_ACTIVE  # bound, and binding: two did run together
    [state] = rt.limits.limit_states(run_key(two_at_a_time.spec.name))
    assert (state.limit, state.in_use, state.waiters) == (MAX_ACTIVE, 0, 0)


def test_limits_declared_in_a_deployed_file_are_set_on_the_stack(
    emulator_backend: Any, tmp_path: Any
) -> None:
    from orchestrator.local import deploy_limits

    path = tmp_path / "declared_limits_e2e.py"
    path.write_text('from orchestrator import Limits\nlimits = Limits({"e2e-declared": 3})\n')
    rt = emulator_backend.rt
    try:
        assert deploy_limits([str(path)]) == {"e2e-declared": 3}
        [state] = rt.limits.limit_states("e2e-declared")
        assert (state.limit, state.in_use, state.waiters) == (3, 0, 0)
    finally:
        set_limit(rt, "e2e-declared", None)
