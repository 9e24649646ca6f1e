"""The Prefect article's four Google Cloud snippets as kumoflow flows (orchestrator.gcp).

On the local stack (BigQuery is bqemulator, Cloud Run the stack's fake Admin API, which runs a
job's command as a local process):

    kumoflow dev up --with bigquery,cloudrun && eval "$(kumoflow dev env)"
    python examples/gcp_helpers.py setup          # save the blocks, seed a BigQuery table
    kumoflow run examples/gcp_helpers.py:credentials_example --backend emulator
    kumoflow run examples/gcp_helpers.py:bigquery_example --backend emulator
    kumoflow run examples/gcp_helpers.py:result_storage_example --backend emulator
    kumoflow run examples/gcp_helpers.py:cloud_run_job_example --backend emulator
"""

from __future__ import annotations

import sys
from typing import Any

from orchestrator import flow, task
from orchestrator.gcp import CloudRunJob, GcpCredentials, GcsBucket, bigquery_query

CREDENTIALS = "kumoflow-demo"  # GcpCredentials block saved by `setup`
TABLE = "kumoflow-local.samples.shakespeare"


# 1. A credentials block, loaded by name in the flow and used by a task.
@task(name="list-buckets")
def list_buckets(credentials: GcpCredentials) -> list[str]:
    client = credentials.get_cloud_storage_client()
    if not client.bucket("kumoflow-demo").exists():
        client.create_bucket("kumoflow-demo")
    return sorted(b.name for b in client.list_buckets())


@flow(name="credentials-example")
def credentials_example() -> list[str]:
    return list_buckets(GcpCredentials.load(CREDENTIALS))


# 2. A BigQuery query with a parameter (a value never formatted into the SQL).
@flow(name="bigquery-example")
def bigquery_example(corpus: str = "romeoandjuliet") -> Any:
    return bigquery_query(
        f"SELECT word, word_count FROM `{TABLE}` WHERE corpus = @corpus ORDER BY word_count DESC",
        GcpCredentials.load(CREDENTIALS),
        query_params=[["corpus", "STRING", corpus]],
        dry_run_max_bytes=100_000_000,
    )


# 3. Results kept under a bucket block's folder (GcsBucket.load("name") works the same once
#    saved; built here so the module imports with no block store around). The flow's storage
#    is its tasks' too, unless a task sets its own (as in Prefect).
reports = GcsBucket(bucket="kumoflow-results", bucket_folder="article/reports")


@task(name="summarize")
def summarize(words: list[str] | None) -> dict[str, int]:
    return {w: len(w) for w in words or ["to", "be", "or", "not"]}


@flow(name="result-storage-example", result_storage=reports)
def result_storage_example(words: list[str] | None = None) -> dict[str, int]:
    return summarize(words)


# 4. A Cloud Run job: the execution runs while no function waits; its end completes the task.
@flow(name="cloud-run-job-example")
def cloud_run_job_example() -> Any:
    job = CloudRunJob(
        image="us-docker.pkg.dev/cloudrun/container/job:latest",
        credentials=GcpCredentials.load(CREDENTIALS),
        region="us-central1",
        # Locally the command runs as a process; in the cloud, inside the image.
        command=[sys.executable, "-c", "print('hello from a Cloud Run job')"],
        timeout=300,
    )
    return job.run(retries=1)


def setup() -> None:
    """Save the example's credentials block and seed its BigQuery table (idempotent)."""
    from google.cloud import bigquery

    credentials = GcpCredentials(project="kumoflow-local")
    credentials.save(CREDENTIALS, overwrite=True)
    client = credentials.get_bigquery_client()
    client.create_dataset("samples", exists_ok=True)
    schema = [
        bigquery.SchemaField(name, kind)
        for name, kind in (("word", "STRING"), ("word_count", "INT64"), ("corpus", "STRING"))
    ]
    client.delete_table(TABLE, not_found_ok=True)
    client.create_table(bigquery.Table(TABLE, schema=schema))
    rows = [
        ("love", 120, "romeoandjuliet"),
        ("night", 80, "romeoandjuliet"),
        ("king", 90, "kinglear"),
    ]
    client.insert_rows_json(
        TABLE, [dict(zip(("word", "word_count", "corpus"), r, strict=True)) for r in rows]
    )
    print(f"saved gcp-credentials/{CREDENTIALS}; seeded {TABLE}")


if __name__ == "__main__":
    if sys.argv[1:] != ["setup"]:
        sys.exit(__doc__)
    setup()
