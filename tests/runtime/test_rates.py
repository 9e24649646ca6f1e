"""Rate limits in one process: a map under a rate never starts more items in any window of
the period than the rate permits, and every item runs; a bad rate is refused when the task is
declared, naming what is wrong and the form; a task without a rate keeps its flow's version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator import BadInputError, task
from orchestrator.adapters import MemoryStore, VirtualClock
from orchestrator.contracts import (
    RunRequested,
    RunStatus,
    TaskOptions,
    TaskRequested,
    TaskStatus,
)
from orchestrator.runtime import (
    InProcessRunner,
    memory_runtime,
    rate_waits,
    run_task,
    start_run,
    tick,
)
from orchestrator.ui import run_view
from tests.flows.paced import RATE, most_in_a_window, paced_map, starts
from tests.runtime.pool import Driver, PoolBus

WIDTH = 25


def test_a_map_under_a_rate_starts_no_faster_than_the_rate_and_every_item_runs() -> None:
    store = MemoryStore()
    with InProcessRunner(store=store, max_workers=8) as runner:
        snap = runner.run(paced_map.spec, {"items": list(range(WIDTH))})
    assert snap.run.status is RunStatus.SUCCEEDED
    items = [t for k, t in snap.tasks.items() if k.startswith("paced-item[")]
    assert len(items) == WIDTH
    assert all(t.status is TaskStatus.SUCCEEDED for t in items)
    times = starts(items)
    assert len(times) == WIDTH
    assert 1 < most_in_a_window(times, RATE.period) <= RATE.count  # a burst, never more
    # 25 starts at 10/s: the 21st cannot start before two periods after the first.
    assert (times[-1] - times[0]) >= 2 * RATE.period
    [state] = store.rate_states(datetime.now(UTC))
    assert (state.key, state.rate) == (RATE.key, RATE)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("openai", "is not of the form"),
        ("openai:60/d", "the unit 'd' is not s, m or h"),
        ("openai:0/m", "the count '0' is not a whole number from 1 to 1000"),
        ("open ai:6/m", "the key 'open ai' is not"),
    ],
)
def test_a_bad_rate_is_refused_naming_what_is_wrong_and_the_form(spec: str, says: str) -> None:
    with pytest.raises(BadInputError) as caught:

        @task(rate=spec)
        def calls(x: int) -> int:
            return x

    assert says in str(caught.value)
    assert 'rate="KEY:COUNT/UNIT"' in str(caught.value)
    assert "@task calls" in str(caught.value)


def test_a_task_without_a_rate_serializes_as_before() -> None:
    """Options added later are left out at their defaults: deployed flows keep their hash."""
    assert "rate" not in TaskOptions(name="t").model_dump(mode="json")
    rated = TaskOptions(name="t", rate="api:5/s").model_dump(mode="json")
    assert rated["rate"] == {"key": "api", "count": 5, "per": "s"}
    assert TaskOptions.model_validate(rated) == TaskOptions(name="t", rate="api:5/s")


def test_a_task_over_its_rate_waits_queued_for_its_timer_and_runs_when_it_fires() -> None:
    """Nothing runs it and nothing polls: its record stays QUEUED, one timer in its run's
    outbox (shown by `runs show`) sends its request again at the time the rate allows."""
    clock = VirtualClock()
    store, bus = MemoryStore(), PoolBus()
    rt = memory_runtime(clock=clock, functions=paced_map.functions(), store=store, bus=bus)
    store.put_flow(paced_map.spec)
    now = clock.now()
    for i in range(RATE.count):  # another run used the whole window just now
        assert store.take_rate(RATE, f"other/t/{i}", now) is None
    driver = Driver(rt, bus)
    start_run(rt, RunRequested(flow="paced-map", params={"items": [7]}), run_id="r")
    driver.drain()
    snap = store.load("r")
    assert snap is not None
    task = snap.tasks["paced-item[0]"]
    assert task.status is TaskStatus.QUEUED
    assert task.attempts[-1].started_at is None  # never claimed
    [timer] = [e for e in snap.outbox if e.key == "paced-item[0]"]
    assert (timer.timer, timer.due_at) == (True, now + RATE.period)
    waits = rate_waits(snap.outbox, rt.plan_of(snap.run))
    assert waits == {"paced-item[0]": f"{RATE} until {(now + RATE.period).isoformat()}"}
    # A duplicate of its request before then is left to the timer: no second timer, no take.
    before = store.rate_states(now)
    dup = TaskRequested(run_id="r", flow_version=snap.run.flow_version, key=timer.key, attempt=1)
    assert run_task(rt, dup) is None
    again = store.load("r")
    assert again is not None
    assert [e.id for e in again.outbox if e.key == "paced-item[0]"] == [timer.id]
    assert store.rate_states(now) == before
    [row] = [r for r in run_view(rt, "r").tasks if r.task.key == "paced-item[0]"]
    assert row.rate == f"{RATE} until {now + RATE.period:%H:%M:%S}"  # the dashboard's note
    clock.sleep(0.5)
    tick(rt)  # not due yet: nothing is sent
    assert not bus.pool
    clock.sleep(0.5)
    tick(rt)
    driver.drain()
    snap = store.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED
    [attempt] = snap.tasks["paced-item[0]"].attempts
    assert attempt.started_at == now + RATE.period
