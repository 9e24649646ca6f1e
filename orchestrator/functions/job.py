"""The entrypoint of a `runtime="job"` task's execution: `python -m orchestrator.functions.job`.

The installation's Cloud Run job (infra/jobs.tf; on the stack, the fake Admin API's) runs it
from the task worker's own image and env; the attempt it runs for comes as env overrides
(KUMOFLOW_RUN_ID, KUMOFLOW_TASK_KEY, KUMOFLOW_ATTEMPT, KUMOFLOW_TOKEN). Its exit code is the
execution's: see orchestrator.runtime.run_job_attempt.
"""

from __future__ import annotations

import os
import sys

from orchestrator.functions import runtime
from orchestrator.runtime import run_job_attempt


def main() -> int:
    return run_job_attempt(runtime(), os.environ)


if __name__ == "__main__":
    sys.exit(main())
