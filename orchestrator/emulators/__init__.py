"""The local stack: Google's Pub/Sub and Firestore emulators, fake-gcs-server, functions, and
when asked (optional `Service`s) bqemulator and a fake Cloud Run Admin API.

Processes run detached (they outlive `kumoflow dev up`), are recorded as JSON under
`StackConfig.state_dir`, and are stopped by PID. Only the stdlib is imported here.

    config = StackConfig.from_env()
    up(config, services=[Service.BIGQUERY])   # idempotent: reuses healthy processes
    os.environ.update(config.env())
    start_function(config, "tasks", target="handle", source=Path("main.py"), port=8690, env={})
    down(config)
"""

from __future__ import annotations

from ._cloudtasks import CloudTasksServer
from ._config import (
    DEFAULT_PORT_BASE,
    PORT_BASE_ENV,
    PORTS,
    SETTINGS,
    PortSetting,
    Service,
    StackConfig,
    StackError,
    port_env,
    prerequisites,
)
from ._functions import start_function, stop_function
from ._net import http_request
from ._scheduler import Job, read_jobs, start_scheduler, write_jobs
from ._scheduler import run as run_scheduler
from ._stack import anything_running, clear_data, down, status, up
from ._status import Health, ServiceStatus, StackStatus

__all__ = [
    "DEFAULT_PORT_BASE",
    "PORTS",
    "PORT_BASE_ENV",
    "SETTINGS",
    "CloudTasksServer",
    "Health",
    "Job",
    "PortSetting",
    "Service",
    "ServiceStatus",
    "StackConfig",
    "StackError",
    "StackStatus",
    "anything_running",
    "clear_data",
    "down",
    "http_request",
    "port_env",
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
