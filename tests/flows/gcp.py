"""Flows over orchestrator.gcp for the local stack: blocks saved by the test process and loaded
by workers, BigQuery against bqemulator, Cloud Run jobs against the fake Admin API."""

from __future__ import annotations

import sys
from typing import Any

from orchestrator import flow, sync_compatible, task
from orchestrator.gcp import CloudRunJob, GcpCredentials, GcsBucket, bigquery_query

CREDENTIALS = "kumoflow-test-credentials"  # saved by tests/e2e/test_gcp.py before any run
BUCKET = "kumoflow-test-bucket"
PY = sys.executable  # the fake Cloud Run API runs a job's command as a local process


@task(name="key-email")
def key_email(credentials: GcpCredentials) -> str:
    """Proves the worker loaded the saved key (and parsed it) without returning any of it."""
    parsed = credentials.get_credentials_from_service_account()
    return getattr(parsed, "service_account_email", "none")


@flow(name="gcp-block-in-worker")
def block_in_worker() -> str:
    return key_email(GcpCredentials.load(CREDENTIALS))


@task(name="names")
def names(rows: list[dict[str, Any]]) -> list[str]:
    return [str(r["name"]) for r in rows]


@task(name="names-above")
def names_above(table: str) -> str:
    """The SQL names the table (not a value: identifiers cannot be parameters); the value is a
    query parameter."""
    return f"SELECT name, n FROM `{table}` WHERE n > @min_n ORDER BY n"


@flow(name="gcp-bigquery")
def bq_names(
    table: str, min_n: int, wait_seconds: float = 30.0, max_bytes: int | None = None
) -> list[str]:
    rows = bigquery_query(
        names_above(table),
        GcpCredentials.load(CREDENTIALS),
        query_params={"min_n": min_n},
        dry_run_max_bytes=max_bytes,
        wait_seconds=wait_seconds,
    )
    return names(rows)


def job(command: list[str], timeout: int = 60, max_retries: int = 0) -> CloudRunJob:
    return CloudRunJob(
        image="python:3.11-slim",
        credentials=GcpCredentials.load(CREDENTIALS),
        region="us-central1",
        command=command,
        env={"GREETING": "hello"},
        timeout=timeout,
        max_retries=max_retries,
    )


@task(name="job-logs")
def job_logs(result: dict[str, Any]) -> str:
    import urllib.request

    with urllib.request.urlopen(result["logs_uri"]) as r:
        return f"{result['status_code']}|{r.read().decode().strip()}"


SAY = "import os; print(os.environ['GREETING'], os.environ['KUMOFLOW_TASK_KEY'])"


@flow(name="gcp-job-ok")
def job_ok(wait_seconds: float = 10.0) -> str:
    return job_logs(job([PY, "-c", SAY]).run(wait_seconds=wait_seconds))


@flow(name="gcp-job-exit-3")
def job_exit_3() -> Any:
    return job([PY, "-c", "print('failing'); raise SystemExit(3)"]).run(retries=1)


@flow(name="gcp-job-timeout")
def job_timeout() -> Any:
    return job([PY, "-c", "import time; time.sleep(60)"], timeout=1).run()


LONG = (
    "import os, tempfile, time; "
    "path = os.path.join(tempfile.gettempdir(), 'kumoflow-job-' + os.environ['KUMOFLOW_RUN_ID']); "
    "open(path, 'w').write(str(os.getpid())); time.sleep(300)"
)


@flow(name="gcp-job-long")
def job_long() -> Any:
    return job([PY, "-c", LONG], timeout=600).run(wait_seconds=0)


@task(
    name="make-report",
    result_storage=GcsBucket(bucket="kumoflow-results", bucket_folder="reports/team-a"),
)
def make_report(n: int) -> dict[str, int]:
    return {"n": n, "double": 2 * n}


@flow(name="gcp-result-storage")
def stored_report(n: int) -> dict[str, int]:
    return make_report(n)


@task(name="async-double")
@sync_compatible
async def async_double(x: int) -> int:
    import asyncio

    await asyncio.sleep(0)
    return 2 * x


@task(name="plus-one")
def plus_one(x: int) -> int:
    return x + 1


@flow(name="gcp-sync-compatible")
def sync_compatible_flow(x: int) -> int:
    return plus_one(async_double(x))


@task(name="bucket-roundtrip")
def bucket_roundtrip(text: str) -> list[str]:
    """GcsBucket's helpers inside a run: through the run's blob store."""
    import tempfile
    from pathlib import Path

    bucket = GcsBucket(bucket="kumoflow-results", bucket_folder="io-test")
    written = bucket.write_path("a/greeting.txt", text.encode())
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "upload.txt"
        source.write_text(text.upper())
        uploaded = bucket.upload_from_path(source, "a/upload.txt")
        copy = bucket.download_object_to_path(uploaded, Path(tmp) / "copy.txt")
        return [written, uploaded, bucket.read_path(written).decode(), copy.read_text()]


@flow(name="gcp-bucket-roundtrip")
def bucket_flow(text: str) -> list[str]:
    return bucket_roundtrip(text)


class FakeFrame:
    """What upload_from_dataframe calls on a pandas DataFrame (pandas is not a dependency)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def to_csv(self, path_or_buf: Any, compression: str | None, index: bool) -> None:
        import csv
        import gzip
        import io

        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(self.rows[0]))
        writer.writeheader()
        writer.writerows(self.rows)
        data = text.getvalue().encode()
        path_or_buf.write(gzip.compress(data, mtime=0) if compression == "gzip" else data)


@task(name="bucket-methods")
def bucket_methods(folder: str) -> dict[str, Any]:
    """prefect_gcp's GcsBucket methods, each once, under a folder of this run's own."""
    import gzip
    import io
    import tempfile
    from pathlib import Path

    bucket = GcsBucket(bucket="kumoflow-results", bucket_folder=folder)
    out: dict[str, Any] = {}
    out["file_object"] = bucket.upload_from_file_object(io.BytesIO(b"one"), "in/one.bin")
    copy = io.BytesIO()
    out["read_back"] = bucket.download_object_to_file_object("in/one.bin", copy).getvalue().decode()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        (source / "deep").mkdir(parents=True)
        (source / "top.txt").write_text("top")
        (source / "deep" / "low.txt").write_text("low")
        out["folder"] = bucket.upload_from_folder(source, "tree")
        got = bucket.download_folder_to_path("tree", Path(tmp) / "dst")
        out["downloaded"] = sorted(
            str(p.relative_to(got)) + "=" + p.read_text() for p in got.rglob("*") if p.is_file()
        )
    frame = FakeFrame([{"a": 1, "b": "x"}])
    out["frame"] = bucket.upload_from_dataframe(frame, "frames/rows.csv")
    out["frame_csv"] = gzip.decompress(bucket.read_path(out["frame"])).decode().splitlines()
    out["blobs"] = [b.name for b in bucket.list_blobs()]
    out["tree"] = [b.name for b in bucket.list_blobs("tree")]
    out["folders"] = bucket.list_folders()
    return out


@flow(name="gcp-bucket-methods")
def bucket_methods_flow(folder: str) -> dict[str, Any]:
    return bucket_methods(folder)


@flow(name="gcp-bucket-in-body")
def bucket_in_body() -> Any:
    return GcsBucket(bucket="kumoflow-results").read_path("x")


@task(name="bucket-timeout")
def bucket_timeout() -> str:
    """google's client takes `timeout=`; the run's blob store does not, and says so."""
    bucket = GcsBucket(bucket="kumoflow-results")
    return str(bucket.download_object_to_path("x", timeout=5))


@flow(name="gcp-bucket-timeout")
def bucket_timeout_flow() -> Any:
    return bucket_timeout()
