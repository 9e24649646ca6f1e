"""A job execution's end of a `runtime="job"` attempt (see _job): find the attempt its env
names, still held by its token, and run its body on the worker's own path (inputs, result
written once, completion reported under the token, lease renewed while it runs)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace

from orchestrator.contracts import TaskStatus
from orchestrator.ports import Commit
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime
from orchestrator.runtime.worker._check import parked
from orchestrator.runtime.worker._job import JobAttempt
from orchestrator.runtime.worker._lease import Lease
from orchestrator.runtime.worker._worker import Claimed, _imported_code, run_claimed

# Cloud Run jobs allow a task up to 7 days; the installation's job is declared with 24 h
# (Terraform sets it from task_job.timeout_s): a task's own timeout_seconds bounds it below that.
JOB_TIMEOUT_S = float(os.environ.get("KUMOFLOW_JOB_TIMEOUT_S", str(24 * 3600)))
# An execution that takes the attempt's body marks the attempt's worker with this: a second
# execution for the same attempt (a platform retry of a killed container) does not run it again.
JOB_WORKER = "job:"


def run_job_attempt(rt: Runtime, env: Mapping[str, str]) -> int:
    """The execution's exit code: 0 once the attempt's end is reported (its body's failure
    included: the attempt failed, the execution did its part), or when the token no longer
    holds it (cancelled, timed out, taken over: nothing to do); 1 when the end could not be
    reported (the check then derives it from the stored result, or fails the attempt)."""
    who = JobAttempt.from_env(env)
    claimed = parked(rt, who.run_id, who.key, who.attempt, who.token)
    where = {"run_id": who.run_id, "task": who.key, "attempt": who.attempt}
    taken = _take(rt, claimed) if isinstance(claimed, Claimed) else None
    if taken is None:
        LOGGER.info("the attempt is no longer this execution's to run", extra=where)
        return 0
    claimed = taken
    try:
        run_claimed(rt, claimed, Lease(rt, claimed.req, who.token), JOB_TIMEOUT_S)
    except Exception:
        LOGGER.exception("could not report the attempt's end", extra=where)
        return 1
    return 0


def _take(rt: Runtime, c: Claimed) -> Claimed | None:
    """Mark the attempt as run by this execution, once; None when the token no longer holds
    it or another execution took it (the same attempt's body never runs twice)."""
    req, token = c.req, c.token
    worker = f"{JOB_WORKER}{rt.worker_id}/{token[:8]}"

    def attempt() -> bool:
        tasks, etags = rt.state.tasks(req.run_id, [req.key])
        task = tasks.get(req.key)
        last = task.attempts[-1] if task is not None and task.attempts else None
        if (
            task is None
            or last is None
            or task.attempt != req.attempt
            or last.token != token
            or task.status not in (TaskStatus.RUNNING, TaskStatus.RETRYING)
            or (last.worker or "").startswith(JOB_WORKER)
        ):
            return False
        # The code the body runs is this image's: a run pinned to an earlier bundle (kept
        # by its own task worker) runs its job-run tasks on the job's current code, and the
        # attempt says so.
        code = _imported_code(rt, c.planned.node, c.spec.source)
        marked = last.model_copy(update={"worker": worker, "code": code})
        mine = task.model_copy(update={"attempts": (*task.attempts[:-1], marked)})
        rt.state.commit(Commit(run_id=req.run_id, tasks=[(mine, etags[req.key])]))
        return True

    taken = retried(attempt, what=f"run {req.run_id}: taking {req.key!r} in a job")
    return replace(c, worker=worker) if taken else None
