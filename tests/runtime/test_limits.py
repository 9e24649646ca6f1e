"""Concurrency limits in one process: a wide map under a limit runs at most the limit at
once and ends with every slot free (each end hands its slot on: with the sweeper's reclaim
alone, a 24 h in-process lease would stall the map); a task in line is shown as waiting."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.adapters import MemoryStore
from orchestrator.contracts import RunStatus, Ticket
from orchestrator.runtime import InProcessRunner, memory_runtime, waiting_for
from tests.flows.limited import KEY, limited_map, most_at_once

WIDTH, LIMIT = 16, 3


def test_a_map_under_a_limit_runs_at_most_the_limit_at_once_and_frees_every_slot() -> None:
    store = MemoryStore()
    store.set_limit(KEY, LIMIT, datetime.now(UTC))
    with InProcessRunner(store=store, max_workers=8) as runner:
        snap = runner.run(limited_map.spec, {"items": list(range(WIDTH)), "kill": []})
    assert snap.run.status is RunStatus.SUCCEEDED
    items = [t for k, t in snap.tasks.items() if k.startswith("limited-item[")]
    assert len(items) == WIDTH
    assert 1 < most_at_once(items) <= LIMIT
    [state] = store.limit_states(KEY)
    assert (state.limit, state.in_use, state.waiters) == (LIMIT, 0, 0)


def test_a_task_in_line_is_shown_waiting_for_its_key() -> None:
    rt = memory_runtime()
    assert rt.limits is not None
    now = datetime.now(UTC)
    rt.limits.set_limit("api", 1, now)
    for task in ("a", "b"):
        ticket = Ticket(key="api", run_id="r1", task=task, attempt=1, enqueued_at=now)
        rt.limits.acquire(ticket, now)
    assert waiting_for(rt, "r1") == {"b": "api"}
    assert waiting_for(rt, "r2") == {}
