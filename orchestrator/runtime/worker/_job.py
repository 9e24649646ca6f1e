"""Tasks declared `runtime="job"`: each attempt runs as a job execution of the task worker's own
code (a Cloud Run job from the same image), on the deferred machinery (see _defer).

The task worker claims the attempt as any other, starts the execution with the attempt's
identity (run id, task key, attempt number, fencing token) as env, notes the execution on the
attempt's record and parks it: no function waits. The execution's entrypoint
(`python -m orchestrator.functions.job`, see _jobrun) runs the task body on the worker's own
path (inputs, result written once, completion reported under the token, lease renewed while
it runs). The check reads the execution's state: still running, it waits; ended, the stored
result is the attempt's result (the entrypoint may have died between storing and reporting),
else the attempt failed with the execution's message. When the attempt is no longer the
parked one (cancelled, timed out, taken over), the execution is cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import JsonValue

from orchestrator.contracts import Attempt, TaskRequested, TaskRun
from orchestrator.errors import KumoflowError, NotFoundError
from orchestrator.ports import JobExecution, JobState
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.worker._defer import Deferred

RUN_ID_ENV = "KUMOFLOW_RUN_ID"
TASK_KEY_ENV = "KUMOFLOW_TASK_KEY"
ATTEMPT_ENV = "KUMOFLOW_ATTEMPT"
TOKEN_ENV = "KUMOFLOW_TOKEN"
# The first check of a fresh execution: a container takes seconds to start anyway.
FIRST_POLL_S = 2.0
QUIET_CHECKS = 3  # see job_outcome


class JobExecutionFailed(RuntimeError):
    """The execution ended without the attempt's result: its entrypoint failed, timed out or
    was cancelled (the message is the platform's). Retried as the task says."""


@dataclass(frozen=True)
class JobAttempt:
    """Who an execution runs for, as its env carries it."""

    run_id: str
    key: str
    attempt: int
    token: str

    def env(self) -> dict[str, str]:
        return {
            RUN_ID_ENV: self.run_id,
            TASK_KEY_ENV: self.key,
            ATTEMPT_ENV: str(self.attempt),
            TOKEN_ENV: self.token,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobAttempt:
        missing = [n for n in (RUN_ID_ENV, TASK_KEY_ENV, ATTEMPT_ENV, TOKEN_ENV) if not env.get(n)]
        if missing:
            raise KumoflowError(f"a job attempt needs {', '.join(missing)} in its env")
        return cls(env[RUN_ID_ENV], env[TASK_KEY_ENV], int(env[ATTEMPT_ENV]), env[TOKEN_ENV])


def start_job(rt: Runtime, req: TaskRequested, token: str) -> Deferred:
    """Start the attempt's execution; its handle, to park the attempt on."""
    if rt.jobs is None:
        raise KumoflowError(
            f"task {req.key!r} runs as a job (runtime='job'), and this task worker has no job "
            "to run it with: set KUMOFLOW_TASK_JOB (Terraform does), or `kumoflow dev up "
            "--with cloudrun` on the stack"
        )
    execution = rt.jobs.start(JobAttempt(req.run_id, req.key, req.attempt, token).env())
    handle: dict[str, JsonValue] = {"execution": execution.name, "logs": execution.logs_url}
    return Deferred(handle, poll_after=FIRST_POLL_S)


def noted(handle: Mapping[str, JsonValue]) -> Callable[[TaskRun], TaskRun]:
    """The attempt's record names its execution and logs (`runs show`, the dashboard)."""
    logs = handle.get("logs")
    execution = JobExecution(str(handle["execution"]), logs if isinstance(logs, str) else None)

    def note(task: TaskRun) -> TaskRun:
        last: Attempt = task.attempts[-1]
        last = last.model_copy(update={"execution": execution.name, "logs_url": execution.logs_url})
        return task.model_copy(update={"attempts": (*task.attempts[:-1], last)})

    return note


def job_outcome(rt: Runtime, handle: Mapping[str, JsonValue], uri: str) -> Deferred | bytes:
    """What the execution says of the attempt: still running (a Deferred), its stored result,
    or (raised) JobExecutionFailed. A retryable KumoflowError: the API could not tell."""
    if rt.jobs is None:
        raise KumoflowError("this instance has no job runner to check a job attempt with")
    name = str(handle["execution"])
    status = rt.jobs.status(name)
    if status.state is JobState.RUNNING:
        return Deferred(dict(handle))
    try:  # stored before the execution ended: the result, however the process ended after
        return rt.blobs.get(uri)
    except NotFoundError:
        pass
    if status.state is JobState.SUCCEEDED:
        # Exit 0 without a result: the entrypoint published the attempt's failure, which the
        # orchestrator may not have recorded yet. Give it a few checks before failing it here.
        quiet = handle.get("quiet")
        seen = quiet if isinstance(quiet, int) else 0
        if seen < QUIET_CHECKS:
            return Deferred({**handle, "quiet": seen + 1})
        raise JobExecutionFailed(f"job execution {name} ended without reporting the attempt")
    raise JobExecutionFailed(
        f"job execution {name} {status.message or 'failed'} (logs: {handle.get('logs')})"
    )


def job_cancel(rt: Runtime) -> Callable[[dict[str, JsonValue]], None]:
    """Stop a job attempt's execution (nothing when it has ended)."""

    def cancel(handle: dict[str, JsonValue]) -> None:
        if rt.jobs is not None:
            rt.jobs.cancel(str(handle["execution"]))

    return cancel
