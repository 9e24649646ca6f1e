"""In-process runners on a store other processes share (the local history, SQLite): each
sweeps the timers of its own runs only, and stops following a run another process ended."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from examples.diamond import diamond
from orchestrator import flow, task
from orchestrator.adapters import FileBlobStore, SqliteStore
from orchestrator.contracts import OutboxEntry, OutboxKind, RunStatus
from orchestrator.engine import CancelRun
from orchestrator.ports import Commit
from orchestrator.runtime import InProcessRunner, advance
from tests.adapters.port_fixtures import created, make_run


def _foreign_timer(store: SqliteStore) -> OutboxEntry:
    """Another process's run (of a flow this process never saw) with a timer long due."""
    run = created(store, make_run())
    entry = OutboxEntry(
        id="wake-1",
        run_id=run.run_id,
        kind=OutboxKind.WAKE,
        due_at=datetime.now(UTC) - timedelta(hours=1),
        timer=True,
    )
    store.commit(Commit(run_id=run.run_id, outbox_add=[entry]))
    return entry


def test_a_runner_on_a_shared_store_leaves_other_runs_timers_alone(tmp_path: Path) -> None:
    store, blobs = SqliteStore(tmp_path / "runs.db"), FileBlobStore(tmp_path / "blobs")
    foreign = _foreign_timer(store)

    with InProcessRunner(
        functions=diamond.functions(), store=store, blobs=blobs, shared=True
    ) as runner:
        outcome = runner.run(diamond.spec, {"n": 3})
    assert outcome.value == {"total": 6, "squares": 14}
    assert store.due(datetime.now(UTC)) == [foreign]  # not fired, not failed, not moved

    # A runner that owns its store (in memory, one process) sweeps everything in it.
    with InProcessRunner(functions=diamond.functions(), store=store, blobs=blobs) as runner:
        runner.run(diamond.spec, {"n": 3})
    assert store.due(datetime.now(UTC)) != [foreign]


GATE = threading.Event()


@task(name="held")
def held(x: int) -> int:
    GATE.wait(30)
    return x


@flow(name="held-open")
def held_open(x: int) -> int:
    return held(x)


def test_a_run_ended_by_another_process_ends_its_runner(tmp_path: Path) -> None:
    db, blobs = tmp_path / "runs.db", FileBlobStore(tmp_path / "blobs")
    runner = InProcessRunner(
        functions=held_open.functions(), store=SqliteStore(db), blobs=blobs, shared=True
    )
    other = InProcessRunner(store=SqliteStore(db), blobs=blobs, shared=True)  # "another process"
    GATE.clear()
    try:

        def cancel_when_running() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                found = other.store.list_runs()
                if found and found[0].status is RunStatus.RUNNING:
                    advance(other.rt, found[0].run_id, CancelRun("from elsewhere"))
                    return
                time.sleep(0.02)

        canceller = threading.Thread(target=cancel_when_running)
        canceller.start()
        started = time.monotonic()
        outcome = runner.run(held_open.spec, {"x": 1})
        canceller.join()
        assert outcome.run.status is RunStatus.CANCELLED
        assert time.monotonic() - started < 10  # it did not wait for its task (30 s)
    finally:
        GATE.set()
        runner.close()
        other.close()
