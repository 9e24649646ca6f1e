"""prefect_gcp's public names and block methods (as of prefect-gcp in PrefectHQ/prefect, commit
ce79dd3), held against what `orchestrator.gcp` has: what `kumoflow check` may call "same name"
and what it must call missing, with what to write instead."""

from __future__ import annotations

import orchestrator.gcp as kumo_gcp

# Async twins (`aread_path`, `abigquery_query`, ...) are listed by their sync names; see `twin`.
BLOCK_METHODS: dict[str, frozenset[str]] = {
    "GcsBucket": frozenset(
        {"read_path", "write_path", "upload_from_path", "download_object_to_path",
         "upload_from_file_object", "download_object_to_file_object", "upload_from_folder",
         "download_folder_to_path", "list_blobs", "list_folders", "upload_from_dataframe",
         "get_bucket", "create_bucket", "get_directory", "put_directory"}
    ),
    "GcpCredentials": frozenset(
        {"get_credentials_from_service_account", "get_access_token", "get_client",
         "get_cloud_storage_client", "get_bigquery_client", "get_secret_manager_client",
         "get_job_service_client", "get_job_service_async_client"}
    ),
    "BigQueryWarehouse": frozenset(
        {"get_connection", "reset_cursors", "fetch_one", "fetch_many", "fetch_all", "execute",
         "execute_many", "close"}
    ),
    "GcpSecret": frozenset(
        {"create_secret", "update_secret", "read_secret", "write_secret", "delete_secret",
         "delete_secret_version"}
    ),
}  # fmt: skip

_BUCKET_ADVICE = {
    "get_bucket": "`bucket.list_blobs()` / `read_path` / `write_path`, or "
    "`GcpCredentials(...).get_cloud_storage_client().bucket(name)` in a task",
    "create_bucket": "create buckets with Terraform or `gcloud storage buckets create`",
    "get_directory": "`download_folder_to_path(from_folder, to_folder)`",
    "put_directory": "`upload_from_folder(from_folder, to_folder)`",
}
_BQ = (
    "`GcpCredentials(...).get_bigquery_client()` in a @task (google.cloud.bigquery), or "
    "`bigquery_query(...)`"
)
_SECRETS = (
    "a block's secret field (saved once, loaded by name), or google.cloud.secretmanager in a "
    "@task through `GcpCredentials`"
)
_NAME_ADVICE = {
    "cloud_storage_create_bucket": _BUCKET_ADVICE["create_bucket"],
    "cloud_storage_download_blob_as_bytes": "`GcsBucket(bucket=...).read_path(blob)` in a @task",
    "cloud_storage_download_blob_to_file": "`GcsBucket(bucket=...).download_object_to_path(blob, "
    "path)` in a @task",
    "cloud_storage_upload_blob_from_string": "`GcsBucket(bucket=...).write_path(blob, "
    "data.encode())` in a @task",
    "cloud_storage_upload_blob_from_file": "`GcsBucket(bucket=...).upload_from_path(path, blob)` "
    "or `.upload_from_file_object(f, blob)` in a @task",
    "cloud_storage_copy_blob": "`read_path` then `write_path` in a @task",
    "BigQueryWarehouse": _BQ,
    "bigquery_create_table": _BQ,
    "bigquery_insert_stream": _BQ,
    "bigquery_load_cloud_storage": _BQ,
    "bigquery_load_file": _BQ,
    "GcpSecret": _SECRETS,
    "create_secret": _SECRETS,
    "update_secret": _SECRETS,
    "read_secret": _SECRETS,
    "delete_secret": _SECRETS,
    "delete_secret_version": _SECRETS,
    "CloudRunWorker": "remove: `kumoflow deploy` runs each task as a function; a long job is "
    "a `CloudRunJob(...).run()` node",
    "CloudRunWorkerV2": "remove: `kumoflow deploy` runs each task as a function; a long job is "
    "a `CloudRunJob(...).run()` node",
    "VertexAIWorker": "remove: no Vertex AI workers; start a Vertex job from a @task",
}


def twin(name: str) -> str:
    """`aread_path` -> `read_path`: prefect_gcp's async twin of a sync name."""
    for names in (*BLOCK_METHODS.values(), frozenset(_NAME_ADVICE), frozenset({"bigquery_query"})):
        if name.startswith("a") and name[1:] in names:
            return name[1:]
    return name


def has_name(name: str) -> bool:
    """`from prefect_gcp... import name` has a counterpart in `orchestrator.gcp`."""
    return name in kumo_gcp.__all__


def name_advice(name: str) -> str:
    if twin(name) != name:
        return (
            f"kumoflow has no async twins: call `{twin(name)}` (sync; a task may still be "
            "`async def`)"
        )
    return _NAME_ADVICE.get(name, "no counterpart in orchestrator.gcp")


def missing_method(cls: str, method: str) -> str | None:
    """Advice when kumoflow's `cls` lacks prefect_gcp's `method` (or its async twin); None
    when it has it, or when `method` is not one of prefect_gcp's."""
    methods = BLOCK_METHODS.get(cls, frozenset())
    sync = method[1:] if method.startswith("a") and method[1:] in methods else method
    if sync not in methods:
        return None
    ours = getattr(kumo_gcp, cls, None)
    has = ours is not None and hasattr(ours, sync)
    if has and sync != method:
        return f"kumoflow's {cls} has no async twins: call `{sync}(...)`, without await"
    if has:
        return None
    if cls == "GcsBucket":
        return _BUCKET_ADVICE.get(sync, "no counterpart")
    if cls == "GcpCredentials":
        return "build that client in a @task from `credentials.credentials()` and `project_id()`"
    return _NAME_ADVICE.get(cls, "no counterpart")
