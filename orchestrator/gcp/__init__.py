"""Google Cloud work inside flows, shaped like prefect_gcp: credentials and bucket blocks,
BigQuery queries and Cloud Run jobs as built-in deferred tasks (no function waits for them);
and the notification blocks (webhook, email) a flow's failures are told to.

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
from orchestrator.gcp._notifications import SmtpNotification, WebhookNotification

BLOCK_TYPES: dict[str, type[Block]] = {
    b.kind: b for b in (GcpCredentials, GcsBucket, WebhookNotification, SmtpNotification)
}

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
    "SmtpNotification",
    "WebhookNotification",
    "bigquery_query",
    "run_cloud_run_job",
]
