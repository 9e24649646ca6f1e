"""Port contract tests: counters and keyed loads, the two things the O(degree) core rests on.

A commit's increments are applied with its other writes or not at all, and the commit returns
the values they produced: with N concurrent blind increments, each value 1..N is seen by
exactly one writer. That is what lets exactly one completion decide a fan-in or a finish."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.contracts import TaskStatus
from orchestrator.errors import ConflictError
from orchestrator.ports import Commit
from tests.adapters import port_fixtures
from tests.adapters.port_fixtures import (
    ERA_PAGES,
    Stores,
    advanced,
    created,
    in_threads,
    make_task,
    outbox_entry,
    task_etag,
)

store = port_fixtures.store


def test_a_commit_returns_the_values_its_increments_produced(store: Stores) -> None:
    run = created(store)
    first = store.commit(
        Commit(run_id=run.run_id, increments={"fanin.1.join": {"done": 1, "bad": 0}})
    )
    assert first == {"fanin.1.join": {"done": 1, "bad": 0}}
    second = store.commit(
        Commit(
            run_id=run.run_id,
            increments={"fanin.1.join": {"done": 1, "bad": 1}, "run.1": {"done": 1, "bad": 1}},
        )
    )
    assert second == {"fanin.1.join": {"done": 2, "bad": 1}, "run.1": {"done": 1, "bad": 1}}
    assert store.counters(run.run_id, ["fanin.1.join", "run.1", "absent"]) == {
        "fanin.1.join": {"done": 2, "bad": 1},
        "run.1": {"done": 1, "bad": 1},
        "absent": {},
    }


def test_concurrent_increments_each_see_a_distinct_value(store: Stores) -> None:
    run = created(store)
    n = 20
    seen: list[int] = [0] * n

    def arrive(i: int) -> None:
        task = make_task(run.run_id, f"leaf[{i}]")
        counts = store.commit(
            Commit(run_id=run.run_id, tasks=[(task, None)], increments={"run.1": {"done": 1}})
        )
        seen[i] = counts["run.1"]["done"]

    assert in_threads(n, arrive) == [None] * n
    assert sorted(seen) == list(range(1, n + 1))  # exactly one writer saw n: the one to finish


def test_increments_of_a_failed_commit_are_not_applied(store: Stores) -> None:
    run = created(store)
    task = make_task(run.run_id, "a")
    store.commit(Commit(run_id=run.run_id, tasks=[(task, None)]))
    stale = task_etag(store, run.run_id, "a")
    store.commit(Commit(run_id=run.run_id, tasks=[(advanced(task, TaskStatus.RUNNING), stale)]))
    with pytest.raises(ConflictError):
        store.commit(
            Commit(
                run_id=run.run_id,
                tasks=[(advanced(task, TaskStatus.SUCCEEDED), stale)],
                increments={"run.1": {"done": 1}},
            )
        )
    assert store.counters(run.run_id, ["run.1"]) == {"run.1": {}}


def test_a_keyed_load_reads_only_those_tasks_and_no_outbox(store: Stores) -> None:
    run = created(store)
    tasks = [make_task(run.run_id, k) for k in ("a", "b[0]", "b[1]")]
    store.commit(
        Commit(
            run_id=run.run_id,
            tasks=[(t, None) for t in tasks],
            outbox_add=[outbox_entry(run.run_id, "x", ERA_PAGES)],
        )
    )
    snap = store.load(run.run_id, ["b[1]", "a", "never-created"])
    assert snap is not None
    assert snap.run == run
    assert set(snap.tasks) == {"a", "b[1]"}
    assert set(snap.etags) == {"a", "b[1]"}
    assert snap.outbox == ()
    empty = store.load(run.run_id, [])
    assert empty is not None
    assert empty.tasks == {}
    store.commit(Commit(run_id=run.run_id, outbox_done=["x"]))  # tests remove what they add


def test_due_pages_through_everything_after_a_cursor(store: Stores) -> None:
    run = created(store)
    base = ERA_PAGES  # its own era: the live sweeper never sees these, other tests' end before
    entries = [outbox_entry(run.run_id, f"e{i:02d}", base + timedelta(seconds=i)) for i in range(7)]
    store.commit(Commit(run_id=run.run_id, outbox_add=entries))
    pages, after = [], None
    while True:
        page = [e for e in store.due(base + timedelta(seconds=10), 3, after)]
        pages.append([e.id for e in page if e.run_id == run.run_id])
        if len(page) < 3:
            break
        after = page[-1]
    assert [i for p in pages for i in p] == [e.id for e in entries]
    store.commit(Commit(run_id=run.run_id, outbox_done=[e.id for e in entries]))


def test_a_marker_makes_a_step_exactly_once(store: Stores) -> None:
    run = created(store)
    roll = Commit(
        run_id=run.run_id, markers=["shard.0.fanin.1.join"], increments={"top": {"done": 1}}
    )
    assert store.commit(roll) == {"top": {"done": 1}}
    outcomes = in_threads(5, lambda _: store.commit(roll))
    assert all(isinstance(o, ConflictError) for o in outcomes)
    assert store.counters(run.run_id, ["top"]) == {"top": {"done": 1}}
