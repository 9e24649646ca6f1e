"""CloudRunJob: run a container as a Cloud Run job execution from a flow, without a function
waiting for it (a built-in deferred task; see orchestrator.runtime.Deferred).

What prefect-gcp's users ran into, and what this does instead:
- the task's end is derived from the execution's own state (its completion time and counts),
  never from a client-side clock, so a timed-out execution fails the task at once;
- the job's timeout is passed to Cloud Run as given, up to the platform's own 7-day limit;
- status is read by the sweeper with backoff (at most a minute apart), not a 5 s loop, and an
  API error that says nothing about the job (503, 429) is asked again later, not a failure;
- one job definition per template (named by its content's hash) is reused by every run, so
  runs leave no definitions behind; `job_name` pins a name, updated when its template changes;
- each execution carries the run id and task key as env (KUMOFLOW_RUN_ID, KUMOFLOW_TASK_KEY):
  Cloud Run sets labels per job, not per execution, and one definition serves many runs;
- the credentials block is the one the API calls use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from typing import Any

from google.api_core import exceptions as gexc
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from orchestrator.adapters import TRANSIENT, execution_status
from orchestrator.context import task_run
from orchestrator.contracts import RetryPolicy
from orchestrator.errors import TransientError
from orchestrator.gcp._blocks import GcpCredentials
from orchestrator.ports import JobState
from orchestrator.runtime import Deferred, deferrable
from orchestrator.sdk import task

INLINE_WAIT_S = 10.0  # a short job ends inside the task's own function; longer ones park
MAX_TIMEOUT_S = 7 * 24 * 3600  # Cloud Run jobs' task timeout limit: never cap below it


class CloudRunJobError(RuntimeError):
    """An execution that failed, timed out or was cancelled; the message is Cloud Run's. The
    user's failure, not kumoflow's: the task's retries apply (`retry_on` matches it)."""


class CloudRunJobResult(BaseModel):
    identifier: str  # the execution's full name
    status_code: int  # 0: every task of the execution succeeded
    logs_uri: str | None = None


class CloudRunJob(BaseModel):
    """A container to run once per call of `.run()` in a flow (as prefect_gcp's)."""

    model_config = ConfigDict(extra="forbid")

    image: str
    credentials: GcpCredentials
    region: str
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cpu: str | None = None  # "1", "2", ...
    memory: str | None = None  # "512Mi", "2Gi", ...
    timeout: int = Field(default=600, gt=0, le=MAX_TIMEOUT_S)  # seconds, per task
    max_retries: int = Field(default=0, ge=0, le=10)  # Cloud Run's retries of a failed task
    job_name: str | None = None

    def __kumoflow_ref__(self) -> JsonValue:
        """In a DAG: the fields, with the credentials block by reference."""
        dumped: dict[str, JsonValue] = self.model_dump(mode="json", exclude={"credentials"})
        dumped["credentials"] = self.credentials.reference(what="CloudRunJob.credentials")
        return dumped

    def run(
        self, retries: int = 0, retry_delay_seconds: float = 0, wait_seconds: float | None = None
    ) -> Any:
        """In a flow body: a task that runs one execution, retried as given when it fails
        (each retry a new execution), waiting inline up to `wait_seconds` before it parks;
        elsewhere: run it and wait for it."""
        retry = RetryPolicy(retries=retries, delay_seconds=retry_delay_seconds)
        wait = INLINE_WAIT_S if wait_seconds is None else wait_seconds
        out = run_cloud_run_job.with_options(retry=retry)(self, wait)
        # Results travel as JSON: a task annotated CloudRunJobResult receives the model again.
        return CloudRunJobResult.model_validate(out) if isinstance(out, dict) else out

    def definition(self) -> Any:
        from google.cloud import run_v2

        resources = {k: v for k, v in (("cpu", self.cpu), ("memory", self.memory)) if v}
        container = run_v2.Container(
            image=self.image,
            command=self.command or [],
            args=self.args or [],
            env=[run_v2.EnvVar(name=k, value=v) for k, v in sorted(self.env.items())],
            resources=run_v2.ResourceRequirements(limits=resources) if resources else None,
        )
        return run_v2.Job(
            labels={"managed-by": "kumoflow"},
            template=run_v2.ExecutionTemplate(
                task_count=1,
                template=run_v2.TaskTemplate(
                    containers=[container],
                    timeout=f"{self.timeout}s",
                    max_retries=self.max_retries,
                    service_account=self._service_account(),
                ),
            ),
        )

    def _service_account(self) -> str:
        info = self.credentials.service_account_info
        email = info.get_secret_value().get("client_email") if info is not None else None
        return str(email or "")  # the job runs as the block's account, not the default one

    def job_id(self) -> str:
        if self.job_name:
            return self.job_name
        template = self.model_dump(mode="json", exclude={"credentials", "job_name", "region"})
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
        return f"kumoflow-{digest[:16]}"

    def ensure(self, jobs: Any) -> str:
        """The job definition's name: created once, reused, updated if `job_name`'s changed."""
        parent = f"projects/{self.credentials.project_id()}/locations/{self.region}"
        name = f"{parent}/jobs/{self.job_id()}"
        wanted = self.definition()
        try:
            found = jobs.get_job(name=name)
        except gexc.NotFound:
            # AlreadyExists: another run of the same template made it first.
            with contextlib.suppress(gexc.AlreadyExists):
                jobs.create_job(parent=parent, job=wanted, job_id=self.job_id()).result()
            return name
        kind = type(wanted.template)
        if self.job_name and kind.to_dict(found.template) != kind.to_dict(wanted.template):
            wanted.name = name
            jobs.update_job(job=wanted).result()
        return name


def _result(execution: Any) -> dict[str, JsonValue] | None:
    """The execution's outcome (a CloudRunJobResult's JSON) from its own state; None while it
    runs; a failure raises."""
    status = execution_status(execution)
    if status.state is JobState.RUNNING:
        return None
    if status.state is JobState.SUCCEEDED:
        done = CloudRunJobResult(
            identifier=execution.name, status_code=0, logs_uri=execution.log_uri
        )
        return done.model_dump(mode="json")
    raise CloudRunJobError(
        f"Cloud Run job execution {execution.name} {status.message} (logs: {execution.log_uri})"
    )


def _check(handle: dict[str, JsonValue]) -> Any:
    credentials = GcpCredentials.model_validate(handle["credentials"])
    _, executions = credentials.get_run_clients()
    try:
        execution = executions.get_execution(name=str(handle["execution"]))
    except TRANSIENT as e:  # says nothing about the execution: ask again later
        raise TransientError(f"Cloud Run execution {handle['execution']}: {e}") from e
    return _result(execution) or Deferred(handle)


def _cancel(handle: dict[str, JsonValue]) -> None:
    credentials = GcpCredentials.model_validate(handle["credentials"])
    _, executions = credentials.get_run_clients()
    executions.cancel_execution(name=str(handle["execution"]))


@task(name="cloud-run-job")
@deferrable(_check, _cancel)
def run_cloud_run_job(job: CloudRunJob, wait_seconds: float = INLINE_WAIT_S) -> Any:
    """Start one execution of `job`; its CloudRunJobResult once it ends (a failure raises)."""
    from google.cloud import run_v2

    jobs, executions = job.credentials.get_run_clients()
    name = job.ensure(jobs)
    ids = task_run.get()
    env = (
        [
            run_v2.EnvVar(name="KUMOFLOW_RUN_ID", value=ids.id.split("/", 1)[0]),
            run_v2.EnvVar(name="KUMOFLOW_TASK_KEY", value=ids.task_key),
        ]
        if ids is not None
        else []
    )
    overrides = run_v2.RunJobRequest.Overrides(
        container_overrides=[run_v2.RunJobRequest.Overrides.ContainerOverride(env=env)]
    )
    operation = jobs.run_job(request=run_v2.RunJobRequest(name=name, overrides=overrides))
    execution_name = operation.metadata.name
    handle: dict[str, JsonValue] = {
        "execution": execution_name,
        "credentials": job.credentials.reference(what="CloudRunJob.credentials"),
    }
    # Outside a run nobody would check a parked execution: wait for it here.
    deadline = time.monotonic() + (wait_seconds if ids is not None else job.timeout * 2 + 60)
    pause = 0.25
    while True:
        done = _result(executions.get_execution(name=execution_name))
        if done is not None:
            return done
        if time.monotonic() + pause > deadline:
            return Deferred(handle, poll_after=2.0)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)
