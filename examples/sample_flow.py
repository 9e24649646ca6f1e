"""The seed flow: JSON records -> CSV -> an object in the results bucket."""

from __future__ import annotations

import csv
import io
import json

from orchestrator import flow, task
from orchestrator.io import write_blob


@task(name="create-csv-file", retries=3, retry_delay_seconds=5)
def create_csv_file(json_str: str) -> str:
    rows = json.loads(json_str)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("json_data must be a JSON list of objects")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@task(name="upload-to-gcs", retries=3, retry_delay_seconds=5)
def upload_to_gcs(csv_data: str, bucket_name: str, filename: str) -> str:
    return write_blob(f"gs://{bucket_name}/{filename}", csv_data.encode(), "text/csv")


@flow(name="sample-flow")
def sample_flow(json_data: str, bucket_name: str = "demo", filename: str = "out.csv") -> str:
    csv_data = create_csv_file(json_data)
    return upload_to_gcs(csv_data, bucket_name, filename)
