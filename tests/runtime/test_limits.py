"""Concurrency limits in one process: a wide map under a limit runs at most the limit at
once and ends with every slot free (each end hands its slot on: with the sweeper's reclaim
alone, a 24 h in-process lease would stall the map); a task in line is shown as waiting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator import task
from orchestrator.adapters import MemoryStore
from orchestrator.contracts import RunStatus, Ticket
from orchestrator.errors import FlowDefinitionError
from orchestrator.runtime import InProcessRunner, memory_runtime, waiting_for
from tests.flows.limited import (
    KEY,
    REGIONS,
    keyless,
    limited_map,
    most_at_once,
    most_at_once_by,
    region_key,
    regional_map,
)

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
    for key in ("a", "b"):
        ticket = Ticket(key="api", run_id="r1", task=key, attempt=1, enqueued_at=now)
        rt.limits.acquire(ticket, now)
    assert waiting_for(rt, "r1") == {"b": "api"}
    assert waiting_for(rt, "r2") == {}


def test_a_key_computed_from_the_inputs_limits_each_key_apart() -> None:
    store = MemoryStore()
    for region in REGIONS:
        store.set_limit(region_key(region), 1, datetime.now(UTC))
    items = list(range(12))
    regions = [REGIONS[i % 2] for i in items]
    with InProcessRunner(store=store, max_workers=8) as runner:
        snap = runner.run(regional_map.spec, {"items": items, "regions": regions})
    assert snap.run.status is RunStatus.SUCCEEDED
    calls = [t for k, t in snap.tasks.items() if k.startswith("regional-call[")]
    assert len(calls) == len(items)
    # Each attempt recorded the key it held; one at a time per key, both keys at once.
    assert most_at_once_by(calls) == {region_key(r): 1 for r in REGIONS}
    assert most_at_once(calls) == 2
    for state in store.limit_states():
        assert (state.in_use, state.waiters) == (0, 0)


def test_the_spec_says_only_that_a_key_is_computed() -> None:
    [node] = [n for n in regional_map.spec.nodes if n.options.name == "regional-call"]
    assert node.options.computed_concurrency
    assert node.options.concurrency is None
    dumped = node.options.model_dump(mode="json")
    assert dumped["computed_concurrency"] is True
    [plain] = [n for n in limited_map.spec.nodes if n.options.name == "limited-total"]
    assert "computed_concurrency" not in plain.options.model_dump(mode="json")


def test_a_key_function_that_gives_no_key_fails_the_attempt_naming_the_task() -> None:
    with InProcessRunner(store=MemoryStore()) as runner:
        snap = runner.run(keyless.spec, {"region": "none"})
        good = runner.run(keyless.spec, {"region": "eu"})
    assert snap.run.status is RunStatus.FAILED
    error = snap.tasks["keyless-call"].attempts[-1].error
    assert error is not None
    assert error.type.endswith("ConcurrencyKeyError")
    assert error.message == (
        "the concurrency key function of task 'keyless-call' returned NoneType None, not a string"
    )
    assert good.run.status is RunStatus.SUCCEEDED
    assert good.tasks["keyless-call"].attempts[-1].slot_key == "eu"


def test_a_key_function_naming_an_unknown_parameter_is_refused_at_definition() -> None:
    with pytest.raises(FlowDefinitionError) as caught:

        @task(concurrency=lambda zone: zone)
        def call(region: str) -> str:
            return region

    assert str(caught.value) == (
        "@task call: concurrency= takes zone, which call has not (its parameters: region)"
    )
