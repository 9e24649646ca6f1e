"""The local stack: Google's Pub/Sub and Firestore emulators, fake-gcs-server, bqemulator, a
fake Cloud Run Admin API, and functions.

Processes run detached (they outlive `kumoflow dev up`), are recorded as JSON under
`StackConfig.state_dir`, and are stopped by PID. Only the stdlib is imported here.

    config = StackConfig.from_env()
    up(config)                      # idempotent: reuses healthy processes
    os.environ.update(config.env())
    start_function(config, "tasks", target="handle", source=Path("main.py"), port=8690, env={})
    down(config)
"""

from __future__ import annotations

from orchestrator.emulators._config import StackConfig, StackError, prerequisites
from orchestrator.emulators._functions import start_function, stop_function
from orchestrator.emulators._net import http_request
from orchestrator.emulators._scheduler import Job, read_jobs, start_scheduler, write_jobs
from orchestrator.emulators._scheduler import run as run_scheduler
from orchestrator.emulators._stack import clear_data, down, status, up
from orchestrator.emulators._status import ServiceStatus, StackStatus

__all__ = [
    "Job",
    "ServiceStatus",
    "StackConfig",
    "StackError",
    "StackStatus",
    "clear_data",
    "down",
    "http_request",
    "prerequisites",
    "read_jobs",
    "run_scheduler",
    "start_function",
    "start_scheduler",
    "status",
    "stop_function",
    "up",
    "write_jobs",
]
