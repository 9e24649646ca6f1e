"""What the contract suite cannot see of the SQLite store and the folder blob store: writers on
other connections and in other processes, where the files live, and their edge cases."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.adapters import (
    DB_FILE,
    HOME_ENV,
    FileBlobStore,
    SqliteStore,
    kumoflow_home,
)
from orchestrator.contracts import RunStatus, TaskStatus
from orchestrator.errors import ConflictError, KumoflowError, TransientError
from orchestrator.ports import Commit
from tests.adapters.port_fixtures import (
    advanced,
    created,
    in_threads,
    load_task,
    make_run,
    make_task,
    outbox_entry,
)

ROOT = Path(__file__).resolve().parents[2]


def test_racing_creates_on_separate_connections_exactly_one_wins(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run = created(SqliteStore(db))
    stores = [SqliteStore(db) for _ in range(8)]  # one connection each, as processes have
    contenders = [make_task(run.run_id, "join", worker=f"w-{i}") for i in range(len(stores))]

    outcomes = in_threads(
        len(stores),
        lambda i: stores[i].commit(Commit(run_id=run.run_id, tasks=[(contenders[i], None)])),
    )

    winners = [i for i, o in enumerate(outcomes) if o is None]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, ConflictError) for o in outcomes if o is not None), outcomes
    found = load_task(SqliteStore(db), run.run_id, "join")
    assert found is not None
    assert found[1] == contenders[winners[0]]


def test_a_stale_etag_from_another_connection_conflicts(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    first, second = SqliteStore(db), SqliteStore(db)
    run = created(first)
    task = make_task(run.run_id, "a")
    first.commit(Commit(run_id=run.run_id, tasks=[(task, None)]))
    read_by_first = load_task(first, run.run_id, "a")
    read_by_second = load_task(second, run.run_id, "a")
    assert read_by_first is not None
    assert read_by_second is not None
    assert read_by_first[2] == read_by_second[2]
    second.commit(
        Commit(run_id=run.run_id, tasks=[(advanced(task, TaskStatus.RUNNING), read_by_second[2])])
    )
    with pytest.raises(ConflictError):
        first.commit(
            Commit(run_id=run.run_id, tasks=[(advanced(task, TaskStatus.FAILED), read_by_first[2])])
        )
    found = load_task(first, run.run_id, "a")
    assert found is not None
    assert found[1] is not None
    assert found[1].status is TaskStatus.RUNNING


_INCREMENTS = """
import json, os, sys, time
from orchestrator.adapters import SqliteStore
from orchestrator.ports import Commit
store = SqliteStore(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[4]):  # all start together, so their commits interleave
    time.sleep(0.001)
seen = [
    store.commit(Commit(run_id=sys.argv[2], increments={"run.1": {"done": 1}}))["run.1"]["done"]
    for _ in range(int(sys.argv[3]))
]
print(json.dumps(seen))
"""


def test_increments_from_concurrent_processes_each_see_a_distinct_value(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    run = created(SqliteStore(db))
    procs, each, go = 3, 300, tmp_path / "go"
    started = [
        subprocess.Popen(
            [sys.executable, "-c", _INCREMENTS, str(db), run.run_id, str(each), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    for proc in started:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    go.touch()
    seen: list[int] = []
    for proc in started:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        seen += json.loads(out)
    # Exactly one commit saw each value: no increment was lost or read twice.
    assert sorted(seen) == list(range(1, procs * each + 1))
    assert SqliteStore(db).counters(run.run_id, ["run.1"]) == {"run.1": {"done": procs * each}}


def test_a_write_lock_held_past_the_busy_timeout_is_transient(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = SqliteStore(db, busy_timeout=0.05)
    run = created(store)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TransientError, match="locked"):
            store.commit(Commit(run_id=run.run_id, tasks=[(make_task(run.run_id, "a"), None)]))
        assert store.load(run.run_id) is not None  # readers are not blocked (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.commit(Commit(run_id=run.run_id, tasks=[(make_task(run.run_id, "a"), None)]))


def test_the_file_is_in_wal_mode_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    created(SqliteStore(db), make_run())
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.execute("PRAGMA user_version = 99")
    raw.commit()
    raw.close()
    with pytest.raises(KumoflowError, match="newer kumoflow"):
        SqliteStore(db)


def test_prune_forgets_runs_that_ended_before_the_cutoff_with_all_they_own(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "runs.db")
    now = datetime.now(UTC)

    def run_with_records(status: RunStatus, ended: datetime | None) -> str:
        run = created(store)
        task = make_task(run.run_id, "a")
        store.commit(
            Commit(
                run_id=run.run_id,
                tasks=[(task, None)],
                outbox_add=[outbox_entry(run.run_id, "timer", now + timedelta(days=9000))],
                increments={"run.1": {"done": 1}},
                markers=["once"],
            )
        )
        snap = store.load(run.run_id, [])
        assert snap is not None
        ended_run = run.model_copy(update={"status": status, "ended_at": ended})
        store.commit(Commit(run_id=run.run_id, run=ended_run, run_etag=snap.run_etag))
        return run.run_id

    old = run_with_records(RunStatus.SUCCEEDED, now - timedelta(days=40))
    old_failed = run_with_records(RunStatus.FAILED, now - timedelta(days=31))
    recent = run_with_records(RunStatus.SUCCEEDED, now - timedelta(days=1))
    running = run_with_records(RunStatus.RUNNING, None)

    assert sorted(store.prune(now - timedelta(days=30))) == sorted([old, old_failed])

    assert {r.run_id for r in store.list_runs()} == {recent, running}
    for gone in (old, old_failed):
        assert store.load(gone) is None
        assert store.tasks(gone, ["a"]) == ({}, {})
        assert store.counters(gone, ["run.1"]) == {"run.1": {}}
    assert {e.run_id for e in store.due(now + timedelta(days=10_000))} == {recent, running}
    # What the runs kept own stays.
    for kept in (recent, running):
        assert store.counters(kept, ["run.1"]) == {"run.1": {"done": 1}}
    assert store.prune(now) == [recent]  # a run not ended is never pruned


def test_history_lives_under_kumoflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "elsewhere"))
    assert kumoflow_home() == tmp_path / "elsewhere"
    store = SqliteStore.at_home()
    assert store.path == tmp_path / "elsewhere" / DB_FILE
    assert store.path.is_file()
    monkeypatch.delenv(HOME_ENV)
    assert kumoflow_home() == Path.home() / ".kumoflow"


# --------------------------------------------------------------------------------------------
# FileBlobStore
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["..", "a/../../b", "/x", "a//b", ".", "%", "%2E", "n" * 400, "a\0b"]
)
def test_blob_names_stay_inside_the_folder_and_apart(tmp_path: Path, name: str) -> None:
    root = tmp_path / "blobs"
    blobs = FileBlobStore(root)
    uri = f"gs://bucket/{name}"
    blobs.put(uri, b"named", "text/plain")
    path = blobs.path(uri).resolve()
    assert path.is_relative_to(root.resolve()), path
    assert blobs.get(uri) == b"named"
    # A different name never lands on the same file.
    for other in ("..", ".", "", "%", "%2E", "b", "n" * 401):
        if other != name:
            assert blobs.path(f"gs://bucket/{other}") != blobs.path(uri)


def test_racing_write_once_puts_of_different_bytes_keep_one_whole_object(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    uri = "gs://bucket/runs/r/result.json"
    payloads = [bytes([i]) * 100_000 for i in range(8)]

    outcomes = in_threads(len(payloads), lambda i: blobs.put(uri, payloads[i], "x"))

    winners = [i for i, o in enumerate(outcomes) if o is None]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, ConflictError) for o in outcomes if o is not None)
    assert blobs.get(uri) == payloads[winners[0]]
    assert [p.name for p in blobs.path(uri).parent.iterdir()] == ["result.json"]  # no temp files


def test_overwrites_are_whole_for_concurrent_readers(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    uri = "gs://bucket/cache/entry.json"
    versions = [bytes([i]) * 200_000 for i in range(1, 6)]
    blobs.put(uri, versions[0], "x")
    stop = threading.Event()
    torn: list[bytes] = []

    def read() -> None:
        while not stop.is_set():
            data = blobs.get(uri)
            if data not in versions:
                torn.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(20):
        for version in versions:
            blobs.put(uri, version, "x", overwrite=True)
    stop.set()
    reader.join()
    assert torn == []


def test_a_name_under_an_object_conflicts_clearly(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    blobs.put("gs://bucket/a", b"1", "x")
    with pytest.raises(ConflictError, match="prefix"):
        blobs.put("gs://bucket/a/b", b"2", "x")
