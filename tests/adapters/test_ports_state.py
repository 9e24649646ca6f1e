"""Port contract tests: StateStore runs, tasks, commits and concurrent commits, on every adapter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrator.contracts import RunStatus, TaskStatus
from orchestrator.errors import ConflictError
from orchestrator.ports import Commit
from tests.adapters import port_fixtures
from tests.adapters.port_fixtures import (
    ERA_KEYS,
    ERA_NEVER,
    Stores,
    _now,
    _uid,
    advanced,
    created,
    in_threads,
    load_task,
    make_run,
    make_task,
    outbox_entry,
    task_etag,
)

# The adapters under test, from port_fixtures (pytest finds fixtures by module attribute).
store = port_fixtures.store


# --------------------------------------------------------------------------------------------
# StateStore: runs
# --------------------------------------------------------------------------------------------


def test_create_run_is_create_only(store: Stores) -> None:
    run = make_run()
    assert store.create_run(run) is True
    duplicate = run.model_copy(update={"params": {"other": True}, "status": RunStatus.RUNNING})
    assert store.create_run(duplicate) is False
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.run == run  # the duplicate did not overwrite


def test_load_unknown_run_is_none(store: Stores) -> None:
    assert store.load(_uid("missing")) is None


def test_load_returns_the_run_with_nested_json_intact(store: Stores) -> None:
    params: dict[str, Any] = {
        "m": [[1, 2], [3]],
        "deep": {"x": [[[]], [{"y": [[1.5, None, "s", True]]}]]},
        "empty": [],
        "text": "ü✓",
    }
    run = created(store, make_run(params=params))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.run == run
    assert snap.run.params["m"] == [[1, 2], [3]]
    assert snap.run.trigger == run.trigger
    assert snap.tasks == {}
    assert snap.etags == {}
    assert snap.outbox == ()


def test_run_update_with_etag(store: Stores) -> None:
    run = created(store)
    snap = store.load(run.run_id)
    assert snap is not None
    running = run.model_copy(
        update={"status": RunStatus.RUNNING, "started_at": _now(), "params": {"m": [[9], []]}}
    )
    store.commit(Commit(run_id=run.run_id, run=running, run_etag=snap.run_etag))
    after = store.load(run.run_id)
    assert after is not None
    assert after.run == running
    failed = running.model_copy(update={"status": RunStatus.FAILED})
    with pytest.raises(ConflictError):  # the etag read before the update is stale now
        store.commit(Commit(run_id=run.run_id, run=failed, run_etag=snap.run_etag))
    again = store.load(run.run_id)
    assert again is not None
    assert again.run == running
    store.commit(Commit(run_id=run.run_id, run=failed, run_etag=after.run_etag))
    final = store.load(run.run_id)
    assert final is not None
    assert final.run.status is RunStatus.FAILED


def test_run_update_without_etag_conflicts(store: Stores) -> None:
    """A run write is conditional like every record in a Commit: no etag, no blind overwrite."""
    run = created(store)
    cancelled = run.model_copy(update={"status": RunStatus.CANCELLED})
    with pytest.raises(ConflictError):
        store.commit(Commit(run_id=run.run_id, run=cancelled, run_etag=None))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.run == run


# --------------------------------------------------------------------------------------------
# StateStore: tasks and commits
# --------------------------------------------------------------------------------------------


def test_task_create_twice_conflicts(store: Stores) -> None:
    run = created(store)
    task = make_task(run.run_id, "a")
    store.commit(Commit(run_id=run.run_id, tasks=[(task, None)]))
    with pytest.raises(ConflictError):
        store.commit(Commit(run_id=run.run_id, tasks=[(advanced(task, TaskStatus.RUNNING), None)]))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.tasks == {"a": task}
    assert set(snap.etags) == {"a"}


def test_task_update_with_fresh_etag_then_stale_etag(store: Stores) -> None:
    run = created(store)
    task = make_task(run.run_id, "a")
    store.commit(Commit(run_id=run.run_id, tasks=[(task, None)]))
    first_etag = task_etag(store, run.run_id, "a")
    running = advanced(task, TaskStatus.RUNNING)
    store.commit(Commit(run_id=run.run_id, tasks=[(running, first_etag)]))
    found = load_task(store, run.run_id, "a")
    assert found is not None
    assert found[1] == running
    with pytest.raises(ConflictError):
        store.commit(
            Commit(run_id=run.run_id, tasks=[(advanced(task, TaskStatus.FAILED), first_etag)])
        )
    assert load_task(store, run.run_id, "a") == found
    succeeded = advanced(running, TaskStatus.SUCCEEDED)
    store.commit(Commit(run_id=run.run_id, tasks=[(succeeded, found[2])]))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.tasks["a"] == succeeded


def test_task_update_of_a_missing_task_conflicts(store: Stores) -> None:
    run = created(store)
    store.commit(Commit(run_id=run.run_id, tasks=[(make_task(run.run_id, "a"), None)]))
    etag_of_a = task_etag(store, run.run_id, "a")
    with pytest.raises(ConflictError):
        store.commit(Commit(run_id=run.run_id, tasks=[(make_task(run.run_id, "b"), etag_of_a)]))
    found = load_task(store, run.run_id, "b")
    assert found is not None
    assert found[1:] == (None, None)


def test_failed_commit_writes_nothing(store: Stores) -> None:
    run = created(store)
    task_a = make_task(run.run_id, "a")
    store.commit(Commit(run_id=run.run_id, tasks=[(task_a, None)]))
    stale = task_etag(store, run.run_id, "a")
    store.commit(Commit(run_id=run.run_id, tasks=[(advanced(task_a, TaskStatus.RUNNING), stale)]))
    before = store.load(run.run_id)
    assert before is not None

    batch = Commit(
        run_id=run.run_id,
        run=run.model_copy(update={"status": RunStatus.RUNNING}),
        run_etag=before.run_etag,  # fresh: valid on its own
        tasks=[
            (make_task(run.run_id, "b"), None),  # valid on its own
            (advanced(task_a, TaskStatus.FAILED), stale),  # fails the batch
            (make_task(run.run_id, "c"), None),  # valid on its own
        ],
        outbox_add=[outbox_entry(run.run_id, "dispatch-b-1", ERA_NEVER, key="b")],
    )
    with pytest.raises(ConflictError):
        store.commit(batch)

    after = store.load(run.run_id)
    assert after is not None
    assert after.run == before.run
    assert after.tasks == before.tasks
    assert set(after.tasks) == {"a"}
    assert after.outbox == ()
    assert all(e.run_id != run.run_id for e in store.due(ERA_NEVER, limit=10_000))
    assert load_task(store, run.run_id, "b") == (run, None, None)
    # The failed batch left the fresh run etag valid: the same writes without the stale one land.
    store.commit(
        Commit(
            run_id=run.run_id,
            run=batch.run,
            run_etag=before.run_etag,
            tasks=[batch.tasks[0], batch.tasks[2]],
        )
    )
    landed = store.load(run.run_id)
    assert landed is not None
    assert set(landed.tasks) == {"a", "b", "c"}
    assert landed.run.status is RunStatus.RUNNING


def test_failed_commit_on_stale_run_etag_writes_no_tasks(store: Stores) -> None:
    run = created(store)
    snap = store.load(run.run_id)
    assert snap is not None
    store.commit(
        Commit(
            run_id=run.run_id,
            run=run.model_copy(update={"status": RunStatus.RUNNING}),
            run_etag=snap.run_etag,
        )
    )
    with pytest.raises(ConflictError):
        store.commit(
            Commit(
                run_id=run.run_id,
                run=run.model_copy(update={"status": RunStatus.CANCELLED}),
                run_etag=snap.run_etag,  # stale
                tasks=[(make_task(run.run_id, "a"), None)],
            )
        )
    after = store.load(run.run_id)
    assert after is not None
    assert after.run.status is RunStatus.RUNNING
    assert after.tasks == {}


def test_load_task(store: Stores) -> None:
    run = created(store)
    task = make_task(run.run_id, "a")
    assert load_task(store, run.run_id, "a") == (run, None, None)
    store.commit(Commit(run_id=run.run_id, tasks=[(task, None)]))
    found = load_task(store, run.run_id, "a")
    assert found is not None
    got_run, got_task, etag = found
    assert got_run == run
    assert got_task == task
    assert etag is not None
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.etags["a"] == etag  # load and load_task hand out the same token
    assert load_task(store, run.run_id, "unknown") == (run, None, None)
    assert load_task(store, _uid("missing"), "a") is None


def test_tasks_without_the_run_hand_out_the_same_records_and_etags(store: Stores) -> None:
    run = created(store)
    store.commit(
        Commit(run_id=run.run_id, tasks=[(make_task(run.run_id, k), None) for k in ("a", "b[1]")])
    )
    snap = store.load(run.run_id, ["a", "b[1]"])
    assert snap is not None
    tasks, etags = store.tasks(run.run_id, ["a", "b[1]", "absent"])
    assert tasks == snap.tasks
    assert etags == snap.etags  # a commit may use either as its precondition
    assert store.tasks(_uid("missing"), ["a"]) == ({}, {})


@pytest.mark.parametrize(
    "key",
    ["scale[3]", "group/scale[12]", "a/b[0]/c", "__reserved__", "..", "ünï cødé", "x" * 1100],
    ids=["brackets", "slash", "slashes-brackets", "dunder", "dotdot", "unicode", "long"],
)
def test_task_keys_with_slashes_and_brackets(store: Stores, key: str) -> None:
    run = created(store)
    task = make_task(run.run_id, key)
    other = make_task(run.run_id, key + "x")  # must not collide with `key`
    store.commit(Commit(run_id=run.run_id, tasks=[(task, None), (other, None)]))
    found = load_task(store, run.run_id, key)
    assert found is not None
    assert found[1] == task
    running = advanced(task, TaskStatus.RUNNING)
    store.commit(Commit(run_id=run.run_id, tasks=[(running, found[2])]))
    with pytest.raises(ConflictError):
        store.commit(Commit(run_id=run.run_id, tasks=[(task, None)]))
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.tasks == {key: running, key + "x": other}
    assert set(snap.etags) == {key, key + "x"}
    entry = outbox_entry(run.run_id, f"dispatch-{key}-1", ERA_KEYS, key=key)
    store.commit(Commit(run_id=run.run_id, outbox_add=[entry]))
    with_entry = store.load(run.run_id)
    assert with_entry is not None
    assert with_entry.outbox == (entry,)
    store.commit(Commit(run_id=run.run_id, outbox_done=[entry.id]))
    without = store.load(run.run_id)
    assert without is not None
    assert without.outbox == ()


def test_list_runs_filters_by_flow_newest_first_with_limit(store: Stores) -> None:
    flow, other_flow = _uid("flow"), _uid("flow")
    t0 = _now()
    oldest = make_run(flow=flow, created_at=t0)
    middle = make_run(flow=flow, created_at=t0 + timedelta(seconds=1))
    newest = make_run(flow=flow, created_at=t0 + timedelta(seconds=2))
    elsewhere = make_run(flow=other_flow, created_at=t0 + timedelta(seconds=3))
    for run in (middle, oldest, elsewhere, newest):
        created(store, run)
    assert store.list_runs(flow=flow) == [newest, middle, oldest]
    assert store.list_runs(flow=flow, limit=2) == [newest, middle]
    # The next page starts before the last run shown.
    assert store.list_runs(flow=flow, limit=2, before=middle.created_at) == [oldest]
    assert store.list_runs(flow=flow, before=oldest.created_at) == []
    assert store.list_runs(flow=other_flow) == [elsewhere]
    assert store.list_runs(flow=_uid("unknown")) == []
    everything = store.list_runs(limit=10_000)
    ours = [r for r in everything if r.flow in (flow, other_flow)]
    assert ours == [elsewhere, newest, middle, oldest]
    stamps = [r.created_at for r in everything]
    assert stamps == sorted(stamps, reverse=True)
    assert len(store.list_runs(limit=1)) == 1


# --------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------


def test_concurrent_commits_of_distinct_tasks_all_succeed(store: Stores) -> None:
    run = created(store)
    tasks = [make_task(run.run_id, f"scale[{i}]") for i in range(20)]

    outcomes = in_threads(
        len(tasks), lambda i: store.commit(Commit(run_id=run.run_id, tasks=[(tasks[i], None)]))
    )

    assert outcomes == [None] * len(tasks)
    snap = store.load(run.run_id)
    assert snap is not None
    assert snap.tasks == {t.key: t for t in tasks}


def test_racing_creates_of_one_task_exactly_one_wins(store: Stores) -> None:
    run = created(store)
    contenders = [make_task(run.run_id, "join", worker=f"worker-{i}") for i in range(10)]

    outcomes = in_threads(
        len(contenders),
        lambda i: store.commit(Commit(run_id=run.run_id, tasks=[(contenders[i], None)])),
    )

    winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, ConflictError) for o in outcomes if o is not None), outcomes
    found = load_task(store, run.run_id, "join")
    assert found is not None
    assert found[1] == contenders[winners[0]]
