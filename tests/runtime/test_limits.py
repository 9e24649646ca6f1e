"""Concurrency limits in one process: a wide map under a limit runs at most the limit at
once and ends with every slot free (each end hands its slot on: with the sweeper's reclaim
alone, a 24 h in-process lease would stall the map); a task in line is shown as waiting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator import task
from orchestrator.adapters import MemoryBus, MemoryStore
from orchestrator.contracts import (
    RunRequested,
    RunStatus,
    SlotHold,
    TaskRequested,
    Ticket,
    holder_of,
)
from orchestrator.engine import CancelRun
from orchestrator.errors import FlowDefinitionError, KumoflowError
from orchestrator.local import retry_run
from orchestrator.ports import Acquired
from orchestrator.runtime import (
    InProcessRunner,
    Runtime,
    advance,
    memory_runtime,
    run_key,
    run_task,
    start_run,
    waiting_for,
    waiting_runs,
)
from tests.flows.limited import (
    KEY,
    MAX_ACTIVE,
    REGIONS,
    keyless,
    limited_map,
    most_at_once,
    most_at_once_by,
    region_key,
    regional_map,
    two_at_a_time,
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


class NamingStore(MemoryStore):
    """A memory store whose takes name the slot they got, as Firestore's do (the holder as
    its version); it records the hold each holder's first release was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.released: dict[str, SlotHold | None] = {}

    def acquire(self, ticket: Ticket, lease_until: datetime) -> Acquired:
        got = super().acquire(ticket, lease_until)
        named = SlotHold(key=ticket.key, index=0, updated=ticket.holder)
        return got._replace(hold=named) if got.holds else got

    def release(
        self, key: str, holder: str, lease_until: datetime, hold: SlotHold | None = None
    ) -> list[Ticket]:
        self.released.setdefault(holder, hold)
        return super().release(key, holder, lease_until, hold)


def test_the_slot_a_claim_took_is_recorded_on_the_attempt_and_handed_to_its_release() -> None:
    store = NamingStore()
    store.set_limit(KEY, LIMIT, datetime.now(UTC))
    with InProcessRunner(store=store, max_workers=8) as runner:
        snap = runner.run(limited_map.spec, {"items": list(range(WIDTH)), "kill": []})
    assert snap.run.status is RunStatus.SUCCEEDED
    items = [t for k, t in snap.tasks.items() if k.startswith("limited-item[")]
    assert len(items) == WIDTH
    for t in items:
        [attempt] = t.attempts
        holder = holder_of(snap.run.run_id, t.key, attempt.number)
        assert attempt.slot == SlotHold(key=KEY, index=0, updated=holder)
        assert store.released[holder] == attempt.slot
    assert snap.tasks["limited-total"].attempts[-1].slot is None  # no key: no slot


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


def _started(rt: Runtime, run_id: str, priority: int = 0) -> RunStatus:
    req = RunRequested(flow=two_at_a_time.spec.name, params={"i": 0}, priority=priority)
    run, _ = start_run(rt, req, run_id=run_id)
    snap = rt.state.load(run.run_id, [])
    assert snap is not None
    return snap.run.status


def _woken(rt: Runtime) -> list[str]:
    """The runs whose start was sent again (handed a run slot), in order; then forgotten."""
    assert isinstance(rt.bus, MemoryBus)
    woken = [
        e.data.run_id
        for topic, e in rt.bus.published
        if topic == rt.topics.runs and isinstance(e.data, RunRequested) and e.data.run_id
    ]
    rt.bus.published.clear()
    return woken


def test_runs_beyond_max_active_runs_wait_and_start_by_priority_then_in_order() -> None:
    bus = MemoryBus()
    bus.record = True
    rt = memory_runtime(functions=two_at_a_time.functions(), bus=bus)
    rt.flows.put_flow(two_at_a_time.spec)
    key = run_key(two_at_a_time.spec.name)
    assert [_started(rt, f"r{n}") for n in range(2)] == [RunStatus.RUNNING] * 2
    assert _started(rt, "low") is RunStatus.PENDING
    assert _started(rt, "high", priority=5) is RunStatus.PENDING
    assert _started(rt, "later") is RunStatus.PENDING
    assert _started(rt, "r0") is RunStatus.RUNNING  # a duplicate start keeps its slot
    [state] = rt.limits.limit_states(key) if rt.limits else []
    assert (state.limit, state.in_use) == (MAX_ACTIVE, MAX_ACTIVE)
    assert [t.run_id for t in state.waiting] == ["high", "low", "later"]
    assert waiting_runs(rt) == {"high": key, "low": key, "later": key}
    rt.bus.published.clear()  # type: ignore[attr-defined]
    # Any end frees the slot: here a cancel. The next in line is handed it and started.
    advance(rt, "r0", CancelRun("operator"))
    assert _woken(rt) == ["high"]
    assert _started(rt, "high", priority=5) is RunStatus.RUNNING
    # A waiting run that is cancelled leaves the line; it holds nothing.
    advance(rt, "low", CancelRun("operator"))
    assert _woken(rt) == []
    assert [t.run_id for t in rt.limits.limit_states(key)[0].waiting] == ["later"]  # type: ignore[union-attr]
    # A resume of an ended run takes a slot too: none is free, so it is refused...
    with pytest.raises(KumoflowError, match="all its run slots are taken"):
        retry_run(rt, "low")
    advance(rt, "r1", CancelRun("operator"))
    assert _woken(rt) == ["later"]
    assert _started(rt, "later") is RunStatus.RUNNING
    assert [t.run_id for t in rt.limits.limit_states(key)[0].waiting] == []  # type: ignore[union-attr]
    advance(rt, "high", CancelRun("operator"))
    assert retry_run(rt, "low").status is RunStatus.RUNNING  # ...and taken once one is


def test_a_task_takes_its_runs_priority_in_line_unless_it_sets_its_own() -> None:
    bus = MemoryBus()
    bus.record = True
    rt = memory_runtime(functions=limited_map.functions(), bus=bus)
    assert rt.limits is not None
    now = datetime.now(UTC)
    rt.limits.set_limit(KEY, 1, now)
    rt.limits.acquire(Ticket(key=KEY, run_id="other", task="t", attempt=1, enqueued_at=now), now)
    rt.flows.put_flow(limited_map.spec)
    req = RunRequested(flow="limited-map", params={"items": [1], "kill": []}, priority=7)
    start_run(rt, req, run_id="urgent-run")
    [request] = [e.data for t, e in bus.published if isinstance(e.data, TaskRequested)]
    assert run_task(rt, request) is None  # no free slot: it waits in line
    [state] = rt.limits.limit_states(KEY)
    assert [(t.run_id, t.priority) for t in state.waiting] == [("urgent-run", 7)]
