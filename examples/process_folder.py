"""Process every file an upload names, then summarize: a run-time map started by GCS.

Uploading `gs://uploads/batches/<name>.json` (a manifest: {"files": ["gs://...", ...]}) starts
a run; `count_lines` runs once per file listed (the list exists only once `read_manifest` ran),
and `summarize` receives every count.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator import GcsObject, flow, on_gcs_finalize, task
from orchestrator.io import read_blob


@task(name="read-manifest", retries=2, retry_delay_seconds=1)
def read_manifest(obj: GcsObject) -> dict[str, Any]:
    manifest = json.loads(read_blob(obj.uri))
    return {"files": [str(f) for f in manifest.get("files", [])], "source": obj.uri}


@task(name="count-lines", retries=2, retry_delay_seconds=1)
def count_lines(uri: str) -> dict[str, Any]:
    return {"file": uri, "lines": read_blob(uri).count(b"\n")}


@task(name="summarize")
def summarize(counts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"files": len(counts), "lines": sum(c["lines"] for c in counts)}


@flow(
    name="process-folder",
    triggers=[on_gcs_finalize(bucket="uploads", prefix="batches/", suffix=".json")],
)
def process_folder(obj: GcsObject) -> dict[str, Any]:
    manifest = read_manifest(obj)
    return summarize(count_lines.map(manifest["files"]))
