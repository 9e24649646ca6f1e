"""End-to-end runs in-process: direct calls and the runner."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from examples.diamond import diamond
from examples.map_reduce import map_reduce
from examples.sample_flow import create_csv_file, sample_flow
from orchestrator import FlowRunError, ParameterError, run_in_process
from orchestrator.adapters import VirtualClock
from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows import basic

ROOT = Path(__file__).resolve().parents[2]
RECORDS = '[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]'


def test_sample_flow_direct_call_returns_its_result() -> None:
    assert sample_flow(json_data=RECORDS) == "gs://demo/out.csv"


def test_a_task_outside_a_flow_is_its_function() -> None:
    assert create_csv_file(RECORDS) == "id,name\n1,a\n2,b\n"


def test_sample_flow_writes_the_csv_through_the_blob_store() -> None:
    outcome = run_in_process(sample_flow, {"json_data": RECORDS, "filename": "x.csv"})
    assert outcome.run.status is RunStatus.SUCCEEDED
    assert outcome.value == "gs://demo/x.csv"


def test_diamond_and_map_reduce() -> None:
    assert diamond(n=4) == {"total": 10, "squares": 30}
    assert map_reduce(items=[1, 2, 3], factor=10) == 60
    assert map_reduce(items=[]) == 0


def test_async_tasks_and_map_over_a_parameter() -> None:
    assert basic.async_and_map(items=[1, 2, 3]) == {"sum": 12, "async": 13}


def test_retries_follow_the_delays_on_the_injected_clock(tmp_path: Path) -> None:
    clock = VirtualClock()
    counter, after = str(tmp_path / "c"), str(tmp_path / "a")
    outcome = run_in_process(
        basic.retrying, {"counter": counter, "failures": 2, "after_counter": after}, clock=clock
    )
    assert outcome.value == "OK AFTER 3"
    flaky = outcome.tasks["flaky"]
    assert flaky.attempt == 3
    assert [a.status for a in flaky.attempts] == [
        TaskStatus.FAILED,
        TaskStatus.FAILED,
        TaskStatus.SUCCEEDED,
    ]
    starts = [a.started_at for a in flaky.attempts]
    assert starts[1] - starts[0] == timedelta(seconds=1)  # type: ignore[operator]
    assert starts[2] - starts[1] == timedelta(seconds=2)  # type: ignore[operator]
    assert clock.slept == [1.0, 2.0]


def test_retries_exhausted_fail_the_run_and_skip_downstream(tmp_path: Path) -> None:
    counter, after = tmp_path / "c", tmp_path / "a"
    with pytest.raises(
        FlowRunError, match=r"task 'flaky-once-only'.*RuntimeError: flaky failure 2"
    ) as info:
        basic.retrying_short(counter=str(counter), failures=2, after_counter=str(after))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.task == "flaky-once-only"
    assert not after.exists()  # downstream never ran
    outcome = run_in_process(
        basic.retrying_short,
        {"counter": str(tmp_path / "d"), "failures": 2, "after_counter": str(after)},
        clock=VirtualClock(),
    )
    assert outcome.tasks["flaky-once-only"].attempt == 2
    assert outcome.tasks["after"].status is TaskStatus.SKIPPED
    assert not after.exists()


def test_retry_on_filters_which_exceptions_retry() -> None:
    clock = VirtualClock()
    value_error = run_in_process(basic.picky_flow, {"kind": "value"}, clock=clock)
    assert value_error.tasks["picky"].attempt == 1
    conn = run_in_process(basic.picky_flow, {"kind": "conn"}, clock=clock)
    assert conn.tasks["picky"].attempt == 4
    assert conn.run.status is RunStatus.FAILED


def test_a_result_json_cannot_carry_is_a_clear_error_naming_the_task() -> None:
    with pytest.raises(
        FlowRunError, match=r"task 'not-json'.*set, which JSON cannot carry.*pickle"
    ):
        basic.returns_a_set()


def test_pickle_is_opt_in_per_task() -> None:
    assert basic.pickled() == 3


def test_task_timeout_fails_the_attempt() -> None:
    with pytest.raises(FlowRunError, match=r"task 'slow'.*TimeoutError.*0.2 s"):
        basic.times_out()


def test_unknown_and_missing_parameters_are_clear() -> None:
    with pytest.raises(ParameterError, match="missing a required argument: 'json_data'"):
        sample_flow()  # type: ignore[call-arg]
    with pytest.raises(ParameterError, match="unexpected keyword argument 'nope'"):
        sample_flow(json_data="[]", nope=1)  # type: ignore[call-arg]
    with pytest.raises(
        ParameterError,
        match=r"parameter 'json_data' of flow 'sample-flow' is a "
        r"object, which JSON cannot carry",
    ):
        sample_flow(json_data=object())  # type: ignore[arg-type]


def test_thousand_task_chain_in_process() -> None:
    assert basic.chain_1000(start=5) == 1005


def test_in_process_path_does_not_import_google_cloud_clients() -> None:
    code = (
        "import sys; from tests.flows.basic import chain_50; chain_50(start=1); "
        "print(sorted(m for m in sys.modules if m.startswith(('google.cloud.', 'google.api_core', "
        "'grpc'))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_a_tasks_own_timeout_error_is_its_error_not_a_timeout() -> None:
    with pytest.raises(FlowRunError, match="the database gave up") as failed:
        basic.raises_its_own_timeout()
    assert "exceeded its timeout" not in str(failed.value)


def test_timed_calls_reuse_their_threads() -> None:
    threads = basic.threads_of_a_chain()
    assert len(threads) == 20
    assert len(set(threads)) <= 2  # one task at a time: not a thread per call


def test_a_hung_task_neither_outlives_its_timeout_nor_holds_up_the_exit() -> None:
    script = (
        "from orchestrator import FlowRunError\n"
        "from tests.flows.basic import hangs_flow\n"
        "try:\n    hangs_flow()\nexcept FlowRunError as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "exceeded its timeout of 0.2 s" in done.stdout
