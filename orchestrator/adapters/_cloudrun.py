"""Cloud Run jobs (the JobRunner port): a `runtime="job"` task's attempt runs as an execution
of the installation's job (KUMOFLOW_TASK_JOB, declared by infra/jobs.tf from the task worker's
image; on the stack, the fake Admin API's), its identity passed as env overrides.

The Admin API client and the reading of an execution's state are the ones CloudRunJob
(orchestrator.gcp) uses too: `run_clients`, `execution_status`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from google.api_core import exceptions as gexc

from orchestrator.adapters._jobs import TASK_JOB_ENV
from orchestrator.errors import TransientError
from orchestrator.ports import JobExecution, JobState, JobStatus

CLOUD_RUN_EMULATOR_ENV = "CLOUD_RUN_EMULATOR_HOST"
# An API error that says nothing about the execution: ask again later.
TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.DeadlineExceeded,
)


def run_clients(credentials: Any | None = None) -> tuple[Any, Any]:
    """Cloud Run Admin API v2 (jobs, executions) over REST: the transport the local fake
    speaks, and the one that needs no gRPC channel per call. On the stack (its endpoint in
    CLOUD_RUN_EMULATOR_HOST) the credentials are anonymous; else `credentials` or ADC."""
    from google.api_core.client_options import ClientOptions
    from google.cloud import run_v2

    endpoint = os.environ.get(CLOUD_RUN_EMULATOR_ENV) or None
    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    if endpoint is not None:
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    return (
        run_v2.JobsClient(credentials=credentials, client_options=options, transport="rest"),
        run_v2.ExecutionsClient(credentials=credentials, client_options=options, transport="rest"),
    )


def execution_status(execution: Any) -> JobStatus:
    """An execution's end from its own state (its completion time and counts), never from a
    client's clock: a timed-out execution has ended, failed."""
    if not execution.completion_time:
        return JobStatus(JobState.RUNNING)
    if execution.succeeded_count >= max(1, execution.task_count):
        return JobStatus(JobState.SUCCEEDED)
    messages = [c.message for c in execution.conditions if c.message]
    what = "was cancelled" if execution.cancelled_count else "failed"
    return JobStatus(JobState.FAILED, f"{what}: {messages[-1] if messages else 'no message'}")


class CloudRunJobs:
    """Executions of one job definition, run as the task worker's service account."""

    def __init__(self, job: str) -> None:
        self.job = job
        self._clients: tuple[Any, Any] | None = None

    @classmethod
    def from_env(cls) -> CloudRunJobs | None:
        job = os.environ.get(TASK_JOB_ENV)
        return cls(job) if job else None

    def _jobs(self) -> tuple[Any, Any]:
        if self._clients is None:
            self._clients = run_clients()
        return self._clients

    def start(self, env: Mapping[str, str]) -> JobExecution:
        from google.cloud import run_v2

        jobs, _ = self._jobs()
        override = run_v2.RunJobRequest.Overrides.ContainerOverride(
            env=[run_v2.EnvVar(name=k, value=v) for k, v in sorted(env.items())]
        )
        request = run_v2.RunJobRequest(
            name=self.job, overrides=run_v2.RunJobRequest.Overrides(container_overrides=[override])
        )
        try:
            operation = jobs.run_job(request=request)
        except TRANSIENT as e:
            raise TransientError(f"Cloud Run job {self.job}: {e}") from e
        execution = operation.metadata
        return JobExecution(execution.name, execution.log_uri or None)

    def status(self, name: str) -> JobStatus:
        _, executions = self._jobs()
        try:
            return execution_status(executions.get_execution(name=name))
        except TRANSIENT as e:
            raise TransientError(f"Cloud Run execution {name}: {e}") from e

    def cancel(self, name: str) -> None:
        if self.status(name).state is not JobState.RUNNING:
            return  # ended: Cloud Run refuses to cancel it
        _, executions = self._jobs()
        executions.cancel_execution(name=name)
