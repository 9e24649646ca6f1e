"""Google Cloud work inside flows, shaped like prefect_gcp: credentials and bucket blocks,
BigQuery queries and Cloud Run jobs as built-in deferred tasks (no function waits for them).

    from orchestrator.gcp import CloudRunJob, GcpCredentials, GcsBucket, bigquery_query
"""

from orchestrator.gcp._bigquery import INLINE_WAIT_S, BigQueryError, bigquery_query
from orchestrator.gcp._blocks import MASK, Block, GcpCredentials
from orchestrator.gcp._bucket import DataFrameSerializationFormat, GcsBucket, GcsObject
from orchestrator.gcp._cloudrun import (
    CloudRunJob,
    CloudRunJobError,
    CloudRunJobResult,
    run_cloud_run_job,
)

BLOCK_TYPES: dict[str, type[Block]] = {b.kind: b for b in (GcpCredentials, GcsBucket)}

__all__ = [
    "BLOCK_TYPES",
    "INLINE_WAIT_S",
    "MASK",
    "BigQueryError",
    "Block",
    "CloudRunJob",
    "CloudRunJobError",
    "CloudRunJobResult",
    "DataFrameSerializationFormat",
    "GcpCredentials",
    "GcsBucket",
    "GcsObject",
    "bigquery_query",
    "run_cloud_run_job",
]
