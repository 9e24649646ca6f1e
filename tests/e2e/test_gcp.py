"""orchestrator.gcp on the local stack: blocks saved here and loaded by the stack's workers,
BigQuery queries against bqemulator, Cloud Run jobs against the fake Admin API (each a real
subprocess), results under a bucket block's folder, sync_compatible tasks; and a service
account key that appears nowhere it must not."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.contracts import RunStatus, TaskStatus
from orchestrator.errors import FlowDefinitionError
from orchestrator.gcp import BigQueryError, CloudRunJobError, GcpCredentials, GcsBucket
from orchestrator.runtime import error_info
from orchestrator.testing import Backend, StackBackend
from tests.flows import gcp as flows

KEY_ID = "kumoflow-test-key-7f3a9c"  # a needle: must never leave the block store


def _service_account_info() -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "kumoflow-local",
        "private_key_id": KEY_ID,
        "private_key": pem,
        "client_email": "runner@kumoflow-local.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


@pytest.fixture
def credentials(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The test credentials block, saved where this backend's workers load it from: a folder
    in-process, the stack's Firestore on the emulators."""
    if "backend" in request.fixturenames and request.getfixturevalue("backend").name == "memory":
        monkeypatch.setenv("KUMOFLOW_BLOCKS_DIR", str(tmp_path / "blocks"))
    info = _service_account_info()
    GcpCredentials(service_account_info=info, project="kumoflow-local").save(
        flows.CREDENTIALS, overwrite=True
    )
    return info


@pytest.fixture
def stack(stack_env: dict[str, str], credentials: Any) -> StackBackend:
    return StackBackend()


# ---------------------------------------------------------------- blocks, on every backend


def test_a_block_saved_here_is_loaded_by_the_worker(backend: Backend, credentials: Any) -> None:
    outcome = backend.run(flows.block_in_worker, {}, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.value == credentials["client_email"]


def test_results_land_under_the_bucket_blocks_folder(backend: Backend, credentials: Any) -> None:
    outcome = backend.run(flows.stored_report, {"n": 4}, timeout=60)
    assert outcome.value == {"n": 4, "double": 8}
    uri = outcome.tasks["make-report"].result_uri
    assert uri == f"gs://kumoflow-results/reports/team-a/runs/{outcome.run.run_id}/make-report.json"


def test_a_sync_compatible_task_is_called_like_a_sync_one(backend: Backend) -> None:
    outcome = backend.run(flows.sync_compatible_flow, {"x": 4}, timeout=60)
    assert outcome.value == 9


def test_bucket_helpers_join_the_folder_once(tmp_path: Path) -> None:
    bucket = GcsBucket(bucket="b", bucket_folder="team/reports/")
    assert bucket.object_name("x.csv") == "team/reports/x.csv"
    assert bucket.object_name("team/reports/x.csv") == "team/reports/x.csv"  # not doubled
    assert bucket.uri() == "gs://b/team/reports"
    assert GcsBucket(bucket="b").object_name("/x.csv") == "x.csv"


# ---------------------------------------------------------------- BigQuery on bqemulator


def _seed_table() -> str:
    client = GcpCredentials(project="kumoflow-local").get_bigquery_client()
    dataset = f"kumoflow-local.ds_{uuid.uuid4().hex[:8]}"
    client.create_dataset(dataset.split(".")[1])
    from google.cloud import bigquery

    table = f"{dataset}.people"
    client.create_table(
        bigquery.Table(
            table,
            schema=[bigquery.SchemaField("name", "STRING"), bigquery.SchemaField("n", "INT64")],
        )
    )
    rows = [{"name": name, "n": n} for n, name in enumerate(["ada", "bob", "cy", "dee"])]
    assert client.insert_rows_json(table, rows) == []
    return table


@pytest.mark.emulator
def test_a_bigquery_query_with_parameters(stack: StackBackend) -> None:
    table = _seed_table()
    params = {"table": table, "min_n": 1, "max_bytes": 10_000_000}
    outcome = stack.run(flows.bq_names, params, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.run.error
    assert outcome.value == ["cy", "dee"]


@pytest.mark.emulator
def test_a_long_query_parks_and_the_sweeper_completes_it(stack: StackBackend) -> None:
    table = _seed_table()
    outcome = stack.run(flows.bq_names, {"table": table, "min_n": 2, "wait_seconds": 0})
    assert outcome.status is RunStatus.SUCCEEDED, outcome.run.error
    assert outcome.value == ["dee"]


@pytest.mark.emulator
def test_a_failing_query_names_its_job(stack: StackBackend) -> None:
    outcome = stack.run(flows.bq_names, {"table": "kumoflow-local.nope.none", "min_n": 0})
    assert outcome.status is RunStatus.FAILED
    error = outcome.tasks["bigquery-query"].error
    assert error is not None
    assert error.type == error_info(BigQueryError("x")).type
    assert error.message.startswith("BigQuery job kumoflow_")
    assert "(US) failed: " in error.message


# ---------------------------------------------------------------- Cloud Run jobs


@pytest.mark.emulator
@pytest.mark.parametrize("wait_seconds", [10.0, 0.0], ids=["inline", "parked"])
def test_a_job_that_exits_0(stack: StackBackend, wait_seconds: float) -> None:
    outcome = stack.run(flows.job_ok, {"wait_seconds": wait_seconds}, timeout=90)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.run.error
    assert outcome.value == "0|hello cloud-run-job"


@pytest.mark.emulator
def test_a_job_that_exits_3_fails_the_task_after_its_retries(stack: StackBackend) -> None:
    outcome = stack.run(flows.job_exit_3, {}, timeout=90)
    assert outcome.status is RunStatus.FAILED
    task = outcome.tasks["cloud-run-job"]
    assert [a.status for a in task.attempts] == [TaskStatus.FAILED, TaskStatus.FAILED]
    for attempt in task.attempts:
        assert attempt.error is not None
        assert attempt.error.type == error_info(CloudRunJobError("x")).type
        assert "failed with exit code 3." in attempt.error.message


@pytest.mark.emulator
def test_a_job_that_times_out_fails_from_the_executions_state(stack: StackBackend) -> None:
    outcome = stack.run(flows.job_timeout, {}, timeout=90)
    assert outcome.status is RunStatus.FAILED
    error = outcome.tasks["cloud-run-job"].error
    assert error is not None
    assert "The configured timeout of 1s was reached." in error.message


@pytest.mark.emulator
def test_cancelling_the_run_cancels_the_execution(stack: StackBackend) -> None:
    import tempfile

    from orchestrator.engine import CancelRun
    from orchestrator.runtime import advance

    run_id = stack.start(flows.job_long, {})
    marker = Path(tempfile.gettempdir()) / f"kumoflow-job-{run_id}"
    deadline = time.monotonic() + 60
    while not marker.exists() or not _checks(stack, run_id):
        assert time.monotonic() < deadline, "the job never started and parked"
        time.sleep(0.2)
    (handle,) = _checks(stack, run_id)
    advance(stack.rt, run_id, CancelRun("test"))
    outcome = stack.wait(run_id, timeout=30)
    assert outcome.status is RunStatus.CANCELLED
    _, executions = GcpCredentials(project="kumoflow-local").get_run_clients()
    while True:
        execution = executions.get_execution(name=handle["execution"])
        if execution.cancelled_count:
            break
        assert time.monotonic() < deadline, "the execution was never cancelled"
        time.sleep(0.2)
    assert not Path(f"/proc/{marker.read_text()}").exists()  # the process is gone too
    marker.unlink()


def _checks(stack: StackBackend, run_id: str) -> list[dict[str, Any]]:
    snap = stack.rt.state.load(run_id)
    if snap is None:
        return []
    return [e.detail["handle"] for e in snap.outbox if e.kind == "check"]  # type: ignore[misc]


# ---------------------------------------------------------------- secrets


@pytest.mark.emulator
def test_the_key_never_leaves_the_block_store(stack: StackBackend, credentials: Any) -> None:
    outcome = stack.run(flows.block_in_worker, {}, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED
    needles = [KEY_ID, credentials["private_key"].splitlines()[1]]
    snap = stack.rt.state.load(outcome.run.run_id)
    assert snap is not None
    seen = [
        snap.run.model_dump_json(),
        *(t.model_dump_json() for t in snap.tasks.values()),
        stack.rt.spec(snap.run.flow_version).model_dump_json(),
        *(d.model_dump_json() for d in stack.rt.letters.list(1000)),
    ]
    runner = CliRunner()
    shown = runner.invoke(main, ["block", "show", f"gcp-credentials/{flows.CREDENTIALS}"])
    assert shown.exit_code == 0, shown.output
    assert "service_account_info: **********" in shown.output
    logs = runner.invoke(main, ["logs", outcome.run.run_id])
    seen += [shown.output, logs.output]
    from orchestrator.local import DevStack

    seen += [p.read_text(errors="replace") for p in DevStack.from_env().config.log_dir.glob("*")]
    for text in seen:
        for needle in needles:
            assert needle not in text
    assert json.dumps(credentials["client_email"]) in json.dumps(outcome.value)


@pytest.mark.emulator
def test_the_articles_snippets_run_on_the_stack(stack: StackBackend) -> None:
    from examples import gcp_helpers

    gcp_helpers.setup()
    buckets = stack.run(gcp_helpers.credentials_example, {}, timeout=60)
    assert "kumoflow-demo" in buckets.value
    rows = stack.run(gcp_helpers.bigquery_example, {}, timeout=60)
    assert rows.value == [{"word": "love", "word_count": 120}, {"word": "night", "word_count": 80}]
    stored = stack.run(gcp_helpers.result_storage_example, {"words": ["ab"]}, timeout=60)
    assert stored.value == {"ab": 2}
    assert stored.run.result_uri == (
        f"gs://kumoflow-results/article/reports/runs/{stored.run.run_id}/summarize.json"
    )
    job = stack.run(gcp_helpers.cloud_run_job_example, {}, timeout=60)
    assert job.status is RunStatus.SUCCEEDED, job.run.error
    assert job.value["status_code"] == 0


@pytest.mark.emulator
def test_a_dry_run_over_the_limit_refuses_the_query(stack: StackBackend) -> None:
    # bqemulator's dry runs estimate 0 bytes: only a limit below that is over it here. The
    # comparison is the one a real estimate meets.
    table = _seed_table()
    outcome = stack.run(flows.bq_names, {"table": table, "min_n": 0, "max_bytes": -1})
    assert outcome.status is RunStatus.FAILED
    error = outcome.tasks["bigquery-query"].error
    assert error is not None
    assert error.message.startswith("query (dry run ")
    assert error.message.endswith(" would process 0 bytes, above dry_run_max_bytes=-1")


def test_bucket_helpers_in_a_task(backend: Backend) -> None:
    outcome = backend.run(flows.bucket_flow, {"text": "hi"}, timeout=60)
    assert outcome.value == ["io-test/a/greeting.txt", "io-test/a/upload.txt", "hi", "HI"]


def _bucket_methods(folder: str) -> dict[str, Any]:
    """What `flows.bucket_methods` returns: names as prefect_gcp's methods give them."""
    tree = [f"{folder}/tree/deep/low.txt", f"{folder}/tree/top.txt"]
    return {
        "file_object": f"{folder}/in/one.bin",
        "read_back": "one",
        "folder": f"{folder}/tree",
        "downloaded": ["deep/low.txt=low", "top.txt=top"],
        "frame": f"{folder}/frames/rows.csv.gz",
        "frame_csv": ["a,b", "1,x"],
        "blobs": [f"{folder}/frames/rows.csv.gz", f"{folder}/in/one.bin", *tree],
        "tree": tree,
        "folders": [f"{folder}/{f}" for f in ("frames", "in", "tree", "tree/deep")],
    }


def test_bucket_methods_in_a_task(backend: Backend) -> None:
    folder = f"methods-{uuid.uuid4().hex[:8]}"
    outcome = backend.run(flows.bucket_methods_flow, {"folder": folder}, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.run.error
    assert outcome.value == _bucket_methods(folder)
    if isinstance(backend, StackBackend):  # the same objects, read back with a storage client
        bucket = GcsBucket(bucket="kumoflow-results", bucket_folder=folder)
        assert [b.name for b in bucket.list_blobs()] == outcome.value["blobs"]
        assert bucket.list_folders("tree") == [f"{folder}/tree", f"{folder}/tree/deep"]


def test_bucket_methods_in_kumoflow_run_write_the_local_folder(tmp_path: Path) -> None:
    """`kumoflow run` (SQLite and a folder, no cloud) keeps the bucket's objects in the folder."""
    import subprocess
    import sys

    from orchestrator.adapters import BLOBS_DIR, HOME_ENV, FileBlobStore

    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "tests.flows.gcp:bucket_methods_flow",
         "--param", "folder=cli", "--json"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120,
        check=False, env={**os.environ, HOME_ENV: str(home), "STORAGE_EMULATOR_HOST": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == _bucket_methods("cli")
    stored = FileBlobStore(home / BLOBS_DIR).list_uris("gs://kumoflow-results/cli/")
    assert stored == [f"gs://kumoflow-results/{n}" for n in _bucket_methods("cli")["blobs"]]


def test_bucket_methods_refuse_a_flow_body_and_client_options_inside_a_run(
    backend: Backend,
) -> None:
    with pytest.raises(FlowDefinitionError, match=r"GcsBucket.read_path\(...\) in a flow body"):
        _ = flows.bucket_in_body.spec
    outcome = backend.run(flows.bucket_timeout_flow, {}, timeout=60)
    error = outcome.tasks["bucket-timeout"].error
    assert error is not None
    assert "timeout: inside a run the bucket reads and writes through the run's blob store" in (
        error.message
    )


@pytest.mark.emulator
def test_bucket_helpers_outside_a_run_use_a_storage_client(stack: StackBackend) -> None:
    outcome = stack.run(flows.bucket_flow, {"text": "hey"}, timeout=60)
    assert outcome.status is RunStatus.SUCCEEDED
    bucket = GcsBucket(bucket="kumoflow-results", bucket_folder="io-test")  # ADC: the emulator
    assert bucket.read_path("a/greeting.txt") == b"hey"  # what the run's worker wrote
    assert bucket.read_path("io-test/a/upload.txt") == b"HEY"
