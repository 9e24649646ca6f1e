"""The worker side: claim one task attempt, load its inputs, run the user's code (or park it as
deferred work), store the result and report the attempt's end; the deferred checks the sweeper
fires; a subflow node's child run. Nothing here advances a run: the control side does."""

from orchestrator.runtime.worker._cache import TaskRunContext, task_input_hash
from orchestrator.runtime.worker._capture import MAX_LINE_CHARS, MAX_LOG_CHARS, Capture, parse
from orchestrator.runtime.worker._check import check
from orchestrator.runtime.worker._defer import (
    MAX_POLL_S,
    OUTAGE_BUDGET,
    Deferred,
    deferrable,
    hooks_of,
    unsure,
)
from orchestrator.runtime.worker._job import JobAttempt, JobExecutionFailed
from orchestrator.runtime.worker._jobrun import JOB_TIMEOUT_S, run_job_attempt
from orchestrator.runtime.worker._lease import Lease
from orchestrator.runtime.worker._worker import run_task

__all__ = [
    "JOB_TIMEOUT_S",
    "MAX_LINE_CHARS",
    "MAX_LOG_CHARS",
    "MAX_POLL_S",
    "OUTAGE_BUDGET",
    "Capture",
    "Deferred",
    "JobAttempt",
    "JobExecutionFailed",
    "Lease",
    "TaskRunContext",
    "check",
    "deferrable",
    "hooks_of",
    "parse",
    "run_job_attempt",
    "run_task",
    "task_input_hash",
    "unsure",
]
