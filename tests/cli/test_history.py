"""The history of in-process runs: `kumoflow run` keeps each run in KUMOFLOW_HOME (SQLite and
a folder of results and logs), and later commands, in other processes, read and steer it with
no stack running: runs list/show/cancel/retry, logs, dlq list."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from examples.diamond import diamond
from orchestrator.adapters import DB_FILE, SqliteStore
from orchestrator.contracts import RunStatus
from orchestrator.runtime import module_digest

ROOT = Path(__file__).resolve().parents[2]
OBSERVED = "tests/flows/observed.py:observed"
GATED = '''
import time
from pathlib import Path

from orchestrator import flow, task, unmapped


@task(name="wait")
def wait(item: int, gate: str) -> int:
    """Holds its run open until `gate` exists."""
    deadline = time.monotonic() + 60
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {gate}")
        time.sleep(0.02)
    return item * 2


@task(name="total")
def total(values: list[int]) -> int:
    return sum(values)


@flow(name="gated")
def gated(items: list[int], gate: str) -> int:
    return total(wait.map(items, gate=unmapped(gate)))
'''


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _env(home: Path) -> dict[str, str]:
    # No stack state: the CLI must find no stack and act on the history.
    return {**os.environ, "KUMOFLOW_HOME": str(home), "KUMOFLOW_STATE_DIR": str(home / "stack")}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _start(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    """The command's JSON: its last line (what user code printed in-process comes first)."""
    try:
        return json.loads(proc.stdout.splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise AssertionError(f"not JSON: {proc.stdout!r}\n{proc.stderr}") from None


def _stop(proc: subprocess.Popen[str]) -> None:
    """Kill `proc` if it still runs, and close its pipes."""
    proc.kill()
    proc.communicate(timeout=30)


def _line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line `proc` prints, within `timeout` seconds."""
    got: queue.SimpleQueue[str] = queue.SimpleQueue()
    threading.Thread(target=lambda: got.put(proc.stdout.readline()), daemon=True).start()
    try:
        return got.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"nothing printed within {timeout} s") from None


def _gated_flow(tmp_path: Path) -> str:
    path = tmp_path / "gated_flow.py"
    path.write_text(GATED)
    return f"{path}:gated"


def _wait_running(home: Path, count: int) -> list[str]:
    """The ids of `count` RUNNING runs, once the history holds them (read as any process)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (home / DB_FILE).exists():
            store = SqliteStore(home / DB_FILE)
            running = [r.run_id for r in store.list_runs() if r.status is RunStatus.RUNNING]
            store.close()
            if len(running) >= count:
                return running
        time.sleep(0.05)
    raise AssertionError(f"{count} runs never ran at once")


def test_a_run_is_listed_and_shown_by_later_processes(home: Path) -> None:
    ran = _cli(home, "run", "examples/diamond.py:diamond", "--param", "n=3", "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = _json(ran)["run_id"]
    assert (home / DB_FILE).is_file()

    listed = _cli(home, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = _json(listed)
    assert [(r["run_id"], r["flow"], r["status"]) for r in rows] == [
        (run_id, "diamond", "succeeded")
    ]

    shown = _cli(home, "runs", "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    run = _json(shown)
    assert run["status"] == "succeeded"
    assert run["result"] == {"total": 6, "squares": 14}  # read back from the results folder
    assert [(t["key"], t["status"]) for t in run["tasks"]] == [
        ("load", "succeeded"),
        ("total", "succeeded"),
        ("squares", "succeeded"),
        ("report", "succeeded"),
    ]
    assert run["params"] == {"n": 3}
    assert (home / "blobs" / "kumoflow-results" / "runs" / run_id).is_dir()
    # Each attempt names the code it ran: the digest of examples/diamond.py.
    codes = {a.get("code") for t in run["tasks"] for a in t["history"]}
    assert codes == {module_digest(diamond.fn)}


def test_the_memory_backend_keeps_nothing(home: Path) -> None:
    ran = _cli(home, "run", "examples/diamond.py:diamond", "--backend", "memory", "--json")
    assert ran.returncode == 0, ran.stderr
    listed = _cli(home, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert _json(listed) == []
    shown = _cli(home, "runs", "show", _json(ran)["run_id"])
    assert shown.returncode == 2
    assert "no run" in shown.stderr


def test_two_concurrent_runs_on_one_store_both_succeed(home: Path, tmp_path: Path) -> None:
    target, gate = _gated_flow(tmp_path), tmp_path / "gate"
    items = "items=[1,2,3,4,5,6]"
    procs = [_start(home, "run", target, "-p", items, "-p", f"gate={gate}", "--json") for _ in "ab"]
    try:
        running = _wait_running(home, 2)  # both hold their run open at once
        gate.touch()  # then twelve tasks in two processes finish together
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            _stop(p)
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert json.loads(out)["result"] == 42
    run_ids = {json.loads(out)["run_id"] for out, _ in outs}
    assert run_ids == set(running)
    listed = _json(_cli(home, "runs", "list", "--json"))
    assert {r["run_id"]: r["status"] for r in listed} == dict.fromkeys(run_ids, "succeeded")


def test_a_failed_run_shows_its_logs_and_retry_resumes_it_in_process(
    home: Path, tmp_path: Path
) -> None:
    marker, counter = tmp_path / "marker", tmp_path / "counter"
    params = ["-p", "n=1", "-p", f"counter={counter}", "-p", f"marker={marker}"]
    ran = _cli(home, "run", OBSERVED, *params, "--json")
    assert ran.returncode == 1
    run_id = _json(ran)["run_id"]
    assert _json(ran)["status"] == "failed"

    logs = _cli(home, "logs", run_id, "--task", "picky", "--json")
    assert logs.returncode == 0, logs.stderr
    lines = [json.loads(line) for line in logs.stdout.splitlines()]
    assert any(line["message"] == "picky got 3" for line in lines)
    assert any("no marker at" in line["message"] for line in lines)

    marker.touch()  # the cause, fixed
    retried = _cli(home, "runs", "retry", run_id, "--json")
    assert retried.returncode == 0, retried.stderr
    out = _json(retried)
    assert out["status"] == "succeeded"
    assert out["result"] == 31  # after(picky(chatty(count(1)))) = ((2 + 1) * 10) + 1
    attempts = {t["key"]: t["attempts"] for t in out["tasks"]}
    assert attempts == {"count": 1, "chatty": 1, "picky": 2, "after": 1}
    assert counter.read_text() == "1\n"  # the succeeded task did not run again

    shown = _json(_cli(home, "runs", "show", run_id, "--json"))
    assert shown["status"] == "succeeded"
    again = _cli(home, "runs", "retry", run_id)
    assert again.returncode == 2
    assert "only a FAILED or CANCELLED run can be retried" in again.stderr


def test_a_run_cancelled_from_another_process_ends_and_retry_finishes_it(
    home: Path, tmp_path: Path
) -> None:
    target, gate = _gated_flow(tmp_path), tmp_path / "gate"
    params = ["-p", "items=[1,2]", "-p", f"gate={gate}"]
    proc = _start(home, "run", target, *params, "--json")
    try:
        (run_id,) = _wait_running(home, 1)
        cancelled = _cli(home, "runs", "cancel", run_id, "--json")
        assert cancelled.returncode == 0, cancelled.stderr
        assert _json(cancelled)["status"] == "cancelled"
        # Its own `kumoflow run` sees the run end and reports it, while its tasks still wait
        # for the gate (what runs when a run is cancelled finishes unobserved, then it exits).
        reported = _line(proc, timeout=30)
        assert json.loads(reported)["status"] == "cancelled"
        gate.touch()
        assert proc.wait(timeout=60) == 1
    finally:
        _stop(proc)

    retried = _cli(home, "runs", "retry", run_id, "--json")
    assert retried.returncode == 0, retried.stderr
    assert _json(retried)["result"] == 6
    dead = _cli(home, "dlq", "list", "--json")
    assert dead.returncode == 0, dead.stderr
    assert _json(dead) == []


def test_prune_forgets_ended_runs_and_their_results(home: Path) -> None:
    ran = _cli(home, "run", "examples/diamond.py:diamond", "--param", "n=2", "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = _json(ran)["run_id"]
    results = home / "blobs" / "kumoflow-results" / "runs" / run_id
    assert results.is_dir()

    kept = _cli(home, "runs", "prune", "--json")  # default: 30 days
    assert kept.returncode == 0, kept.stderr
    assert _json(kept) == {"pruned": [], "days": 30.0}
    assert results.is_dir()

    pruned = _cli(home, "runs", "prune", "--days", "0", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert _json(pruned) == {"pruned": [run_id], "days": 0.0}
    assert _json(_cli(home, "runs", "list", "--json")) == []
    assert not results.exists()


def test_ctrl_c_leaves_the_run_cancelled_and_retry_resumes_it(home: Path, tmp_path: Path) -> None:
    target, gate = _gated_flow(tmp_path), tmp_path / "gate"
    proc = _start(home, "run", target, "-p", "items=[1,2,3]", "-p", f"gate={gate}")
    try:
        (run_id,) = _wait_running(home, 1)
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        status = RunStatus.RUNNING
        while status is RunStatus.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
            store = SqliteStore(home / DB_FILE)
            snap = store.load(run_id, [])
            store.close()
            assert snap is not None
            status = snap.run.status
        assert status is RunStatus.CANCELLED
        gate.touch()  # what still ran in it ends, and so does the process
        _, err = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    assert proc.returncode != 0
    assert f"kumoflow runs retry {run_id}" in err

    retried = _cli(home, "runs", "retry", run_id, "--json")
    assert retried.returncode == 0, retried.stderr
    assert _json(retried)["result"] == 12


def test_commands_that_need_the_stack_still_say_so(home: Path, tmp_path: Path) -> None:
    # Triggers and redrives reach the functions: without a stack there is nothing to start,
    # so they do not fall back to the history.
    data = tmp_path / "data.txt"
    data.write_text("x")
    upload = _cli(home, "trigger", "upload", str(data), "gs://inbox/data.txt")
    assert upload.returncode == 2
    assert "the local stack is not running" in upload.stderr
    assert not (home / "blobs" / "inbox").exists()
    redrive = _cli(home, "dlq", "redrive", "some-letter")
    assert redrive.returncode == 2
    assert "the local stack is not running" in redrive.stderr


def test_a_killed_run_shows_abandoned_and_retry_resumes_it(home: Path, tmp_path: Path) -> None:
    # SIGKILL: nothing in the process runs on the way out, so only its driver lock (dropped
    # by the kernel) tells later commands that nothing drives the run any more.
    target, gate = _gated_flow(tmp_path), tmp_path / "gate"
    proc = _start(home, "run", target, "-p", "items=[1,2,3]", "-p", f"gate={gate}")
    try:
        (run_id,) = _wait_running(home, 1)
        # While its process lives, the run stays RUNNING whoever reads the history.
        listed = _json(_cli(home, "runs", "list", "--json"))
        assert [(r["run_id"], r["status"]) for r in listed] == [(run_id, "running")]
        refused = _cli(home, "runs", "retry", run_id)
        assert refused.returncode != 0
        assert f"is being driven by another process (pid {proc.pid})" in refused.stderr
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _stop(proc)

    shown = _cli(home, "runs", "show", run_id, "--json")
    assert _json(shown)["status"] == "cancelled", shown.stderr
    listed = _json(_cli(home, "runs", "list", "--json"))
    assert [(r["run_id"], r["status"]) for r in listed] == [(run_id, "cancelled")]
    store = SqliteStore(home / DB_FILE)
    snap = store.load(run_id, [])
    store.close()
    assert snap is not None
    assert "abandoned" in str(snap.run.error)
    assert list((home / "drivers").glob("*.lock")) == []

    gate.touch()
    retried = _cli(home, "runs", "retry", run_id, "--json")
    assert retried.returncode == 0, retried.stderr
    assert _json(retried)["result"] == 12
