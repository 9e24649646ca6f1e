"""bigquery_query: a built-in deferred task, as prefect_gcp's.

The task submits the query job and waits inline up to `INLINE_WAIT_S` (most queries end well
inside it). A longer query parks the attempt (orchestrator.runtime.Deferred): no function waits;
the sweeper checks the job with backoff (at most a minute apart, which is production's sweep
tick) and the attempt ends with the job. Production could end it sooner from the job's
completion event (Eventarc's Cloud Audit Log entry for bigquery.googleapis.com with jobChange
state DONE); that route is not wired yet.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import TimeoutError as WaitTimeout
from typing import Any

from google.api_core import exceptions as gexc
from pydantic import JsonValue

from orchestrator.context import task_run
from orchestrator.errors import TransientError
from orchestrator.gcp._blocks import GcpCredentials
from orchestrator.runtime import Deferred, deferrable
from orchestrator.sdk import task

INLINE_WAIT_S = 30.0  # far under a task function's 540 s; past it the attempt parks
_TRANSIENT = (gexc.ServiceUnavailable, gexc.InternalServerError, gexc.TooManyRequests)


class BigQueryError(RuntimeError):
    """A query job failed (or would read too much); the message names the job. The user's
    failure, not kumoflow's: the task's retries apply."""


_TYPES: list[tuple[type, str]] = [
    (bool, "BOOL"),
    (int, "INT64"),
    (float, "FLOAT64"),
    (str, "STRING"),
    (dt.datetime, "TIMESTAMP"),
    (dt.date, "DATE"),
]


def _parameters(query_params: Mapping[str, Any] | Sequence[Sequence[Any]] | None) -> list[Any]:
    """`{"name": value}` (type from the value) or `[(name, type, value), ...]` as in
    prefect_gcp: values travel as query parameters, never formatted into the SQL."""
    from google.cloud import bigquery

    if not query_params:
        return []
    if isinstance(query_params, Mapping):
        out: list[Any] = []
        for name, value in query_params.items():
            kind = next((t for cls, t in _TYPES if isinstance(value, cls)), None)
            if isinstance(value, list):
                inner = next((t for cls, t in _TYPES if value and isinstance(value[0], cls)), None)
                out.append(bigquery.ArrayQueryParameter(name, inner or "STRING", value))
                continue
            if kind is None:
                raise TypeError(f"query parameter {name!r}: give its type as (name, type, value)")
            out.append(bigquery.ScalarQueryParameter(name, kind, value))
        return out
    return [bigquery.ScalarQueryParameter(name, kind, value) for name, kind, value in query_params]


def _jsonable(value: Any) -> JsonValue:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value  # type: ignore[no-any-return]


def _rows(job: Any) -> list[dict[str, JsonValue]]:
    return [{k: _jsonable(v) for k, v in row.items()} for row in job.result()]


def _failed(job: Any, error: Exception | None = None) -> BigQueryError:
    detail = (job.error_result or {}).get("message") if error is None else str(error)
    return BigQueryError(f"BigQuery job {job.job_id} ({job.location}) failed: {detail}")


def _check(handle: dict[str, JsonValue]) -> Any:
    credentials = GcpCredentials.model_validate(handle["credentials"])
    client = credentials.get_bigquery_client()
    try:
        job = client.get_job(str(handle["job_id"]), location=str(handle["location"]))
        if job.state != "DONE":
            return Deferred(handle)
        if job.error_result:
            raise _failed(job)
        return [] if handle.get("destination") else _rows(job)
    except _TRANSIENT as e:  # could not tell: the sweep asks again later
        raise TransientError(f"BigQuery job {handle['job_id']}: {e}") from e
    except gexc.GoogleAPICallError as e:
        raise BigQueryError(f"BigQuery job {handle['job_id']} failed: {e}") from e


def _cancel(handle: dict[str, JsonValue]) -> None:
    credentials = GcpCredentials.model_validate(handle["credentials"])
    client = credentials.get_bigquery_client()
    client.cancel_job(str(handle["job_id"]), location=str(handle["location"]))


@task(name="bigquery-query")
@deferrable(_check, _cancel)
def bigquery_query(
    query: str,
    gcp_credentials: GcpCredentials,
    query_params: dict[str, Any] | list[list[Any]] | None = None,
    dry_run_max_bytes: int | None = None,
    dataset: str | None = None,
    table: str | None = None,
    job_config: dict[str, Any] | None = None,
    location: str = "US",
    dialect: str = "standard",
    wait_seconds: float = INLINE_WAIT_S,
) -> Any:
    """Run a query; the rows as a list of dicts (or [] when written to `dataset.table`).

    `query_params`: `{"name": value}` or `[[name, type, value], ...]`, referenced as `@name`.
    `dry_run_max_bytes`: a dry run first, refusing a query that would read more.
    `job_config`: QueryJobConfig fields by name (`{"maximum_bytes_billed": ...}`)."""
    from google.cloud import bigquery

    client = gcp_credentials.get_bigquery_client(location=location)
    config = bigquery.QueryJobConfig(**(job_config or {}))
    config.query_parameters = _parameters(query_params)
    config.use_legacy_sql = dialect == "legacy"
    if dry_run_max_bytes is not None:
        dry = bigquery.QueryJobConfig.from_api_repr(config.to_api_repr())
        dry.dry_run, dry.use_query_cache = True, False
        try:
            probe = client.query(query, job_config=dry, location=location)
        except gexc.GoogleAPICallError as e:
            raise BigQueryError(f"BigQuery dry run of the query failed: {e}") from e
        if (probe.total_bytes_processed or 0) > dry_run_max_bytes:
            raise BigQueryError(
                f"query (dry run {probe.job_id}) would process {probe.total_bytes_processed} "
                f"bytes, above dry_run_max_bytes={dry_run_max_bytes}"
            )
    if dataset and table:
        config.destination = f"{client.project}.{dataset}.{table}"
        config.write_disposition = config.write_disposition or "WRITE_TRUNCATE"
    job_id = f"kumoflow_{uuid.uuid4().hex}"  # ours, so even a rejected job is named
    try:
        job = client.query(query, job_config=config, location=location, job_id=job_id)
    except gexc.GoogleAPICallError as e:
        raise BigQueryError(f"BigQuery job {job_id} ({location}) failed: {e}") from e
    in_run = bool(task_run)
    try:
        job.result(timeout=wait_seconds if in_run else None)
    except WaitTimeout:
        handle: dict[str, JsonValue] = {
            "job_id": job.job_id,
            "location": job.location or location,
            "credentials": gcp_credentials.reference(what="bigquery_query's gcp_credentials"),
            "destination": bool(dataset and table),
        }
        return Deferred(handle, poll_after=5.0)
    except gexc.GoogleAPICallError as e:
        raise _failed(job, e) from e
    return [] if dataset and table else _rows(job)
