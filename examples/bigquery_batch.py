"""A batch of files in GCS loaded into BigQuery, one load per file, at most LIMIT at once: the
map fans out over every file and the concurrency key holds the loads back (see
docs/howto/limits.md). On the local stack (fake-gcs-server and bqemulator):

    kumoflow dev up --with bigquery && eval "$(kumoflow dev env)"
    python examples/bigquery_batch.py setup 1000   # a bucket of 1,000 files, a table
    kumoflow limits set bigquery 20
    kumoflow run examples/bigquery_batch.py:load_batch --backend emulator \\
        -p bucket=kumoflow-batch -p prefix=batch/ -p table=kumoflow-local.batch.events

Each file is newline-delimited JSON; a load reads it and inserts its rows with one query job
(bqemulator runs no load jobs from gs:// URIs, and hangs on concurrent streaming inserts; in the
cloud `client.load_table_from_uri(uri, table).result()` is the same task, one load job per file).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from google.cloud import bigquery, storage  # type: ignore[attr-defined]

from orchestrator import flow, task, unmapped
from orchestrator.gcp import GcpCredentials

# Imported here, once, as the worker loads this module: tasks on several worker threads that
# each imported Google's clients lazily and at once were seen to hang the worker.
__all__ = ["bigquery", "load_batch", "setup", "storage"]

KEY = "bigquery"  # `kumoflow limits set bigquery 20`
PROJECT = "kumoflow-local"


def _credentials() -> GcpCredentials:
    return GcpCredentials(project=PROJECT)


@task(name="list-files")
def list_files(bucket: str, prefix: str) -> list[str]:
    client = _credentials().get_cloud_storage_client()
    return sorted(f"gs://{bucket}/{b.name}" for b in client.list_blobs(bucket, prefix=prefix))


@task(name="load-file", concurrency=KEY, retries=3, retry_delay_seconds=2)
def load_file(uri: str, table: str) -> int:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    text = _credentials().get_cloud_storage_client().bucket(bucket).blob(name).download_as_text()
    rows = [json.loads(line) for line in text.splitlines() if line]
    values = ", ".join(f"(@file_{i}, @line_{i})" for i in range(len(rows)))
    params = [
        bigquery.ScalarQueryParameter(f"{name}_{i}", "INT64", row[name])
        for i, row in enumerate(rows)
        for name in ("file", "line")
    ]
    job = (
        _credentials()
        .get_bigquery_client()
        .query(
            f"INSERT INTO `{table}` (file, line) VALUES {values}",
            job_config=bigquery.QueryJobConfig(query_parameters=params),
        )
    )
    job.result()  # one BigQuery job per file: what the limit counts
    return len(rows)


@task(name="count-rows")
def count_rows(counts: list[int]) -> int:
    return sum(counts)


@flow(name="load-batch")
def load_batch(bucket: str, prefix: str, table: str) -> int:
    return count_rows(load_file.map(list_files(bucket, prefix), table=unmapped(table)))


def setup(files: int, bucket: str = "kumoflow-batch", table: str = "batch.events") -> Any:
    """A bucket of `files` files (3 rows each) under batch/, and an empty table."""
    storage = _credentials().get_cloud_storage_client()
    found = storage.lookup_bucket(bucket) or storage.create_bucket(bucket)
    for i in range(files):
        rows = "".join(json.dumps({"file": i, "line": n}) + "\n" for n in range(3))
        found.blob(f"batch/{i:05d}.json").upload_from_string(rows)
    client = _credentials().get_bigquery_client()
    client.create_dataset(table.partition(".")[0], exists_ok=True)
    schema = [bigquery.SchemaField("file", "INT64"), bigquery.SchemaField("line", "INT64")]
    return client.create_table(bigquery.Table(f"{PROJECT}.{table}", schema=schema), exists_ok=True)


if __name__ == "__main__" and sys.argv[1:2] == ["setup"]:
    setup(int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
