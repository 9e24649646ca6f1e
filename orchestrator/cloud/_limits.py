"""What a deploy to Google Cloud refuses before anything is written: a task that runs inside the
task worker function but asks for longer than that function may run. Cloud Run cuts the
function off at its timeout, so such a task would only ever fail, late, as a lease expiry.

Deferred tasks (CloudRunJob, BigQuery queries) are exempt: their function returns as soon as
the work has started elsewhere, and their timeout covers that work, not the function. A
`runtime="job"` task runs in the task job's execution, not the function: its limit is the
job's (Terraform `task_job.timeout_s`, 24 h by default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from orchestrator.contracts import FlowSpec, TaskRuntime
from orchestrator.errors import KumoflowError
from orchestrator.local import FUNCTIONS
from orchestrator.runtime import JOB_TIMEOUT_S, hooks_of

WORKER = "task_worker"
# The task worker function's timeout (infra/wiring.json, functions.task_worker.timeout_s).
WORKER_TIMEOUT_S = next(fn.timeout_s for fn in FUNCTIONS if fn.name == WORKER)


def _long_tasks(
    spec: FlowSpec, functions: Mapping[str, Callable[..., Any]], limit: float, job_limit: float
) -> Iterable[tuple[str, TaskRuntime]]:
    """(task, where it runs) for every task whose timeout exceeds where it runs."""
    for node in spec.nodes:
        timeout = node.options.timeout_seconds
        runtime = node.options.runtime
        if node.subflow is not None or timeout is None:
            continue  # a subflow node runs as a child run: its own tasks are checked below
        if timeout <= (job_limit if runtime is TaskRuntime.JOB else limit):
            continue
        fn = functions.get(node.task)
        if runtime is TaskRuntime.FUNCTION and fn is not None and hooks_of(fn) is not None:
            continue
        yield f"{spec.name}/{node.options.name} (timeout_seconds={timeout:g})", runtime
    for child in spec.subflows.values():
        yield from _long_tasks(child, functions, limit, job_limit)


def refuse_long_tasks(
    flows: Iterable[tuple[FlowSpec, Mapping[str, Callable[..., Any]]]],
    limit: float = WORKER_TIMEOUT_S,
    job_limit: float = JOB_TIMEOUT_S,
) -> None:
    """Raise naming every function-run task whose timeout exceeds `limit` (and both fixes),
    and every job-run task whose timeout exceeds the task job's `job_limit`."""
    # dict: a child flow deployed beside the parent that runs it is named once.
    found = dict.fromkeys(
        t for spec, fns in flows for t in _long_tasks(spec, fns, limit, job_limit)
    )
    in_function = [n for n, where in found if where is TaskRuntime.FUNCTION]
    in_job = [n for n, where in found if where is TaskRuntime.JOB]
    problems = []
    if in_function:
        problems.append(
            f"{', '.join(in_function)}: longer than the task worker function may run on Google "
            f"Cloud ({limit:g} s; Cloud Run stops it there). Lower the task's timeout_seconds "
            f"to at most {limit:g}, or run the work as a Cloud Run job: "
            f'`@task(runtime="job")` (up to {job_limit:g} s), or a CloudRunJob '
            "(orchestrator.gcp) started by the flow; neither holds a function while it runs"
        )
    if in_job:
        problems.append(
            f'{", ".join(in_job)}: runtime="job", longer than the task job\'s timeout '
            f"({job_limit:g} s, Terraform's task_job.timeout_s); lower timeout_seconds, or raise "
            "the job's timeout (Cloud Run allows up to 7 days) and KUMOFLOW_JOB_TIMEOUT_S"
        )
    if problems:
        raise KumoflowError("; ".join(problems))
