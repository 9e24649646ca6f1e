"""A local Cloud Scheduler: jobs that publish to Pub/Sub topics on a cron or an interval.

It publishes exactly what a Scheduler job with a Pub/Sub target publishes: the job's data and
attributes, nothing else. Jobs live in `state_dir/scheduler/jobs.json`; the process rereads the
file when it changes, so deploying a schedule needs no restart.

Missed fires: like Cloud Scheduler, fires that fall while the scheduler is not running are not
replayed. A restart resumes from the next fire after "now"; the time of each job's last fire is
kept in `scheduler/last-fires.json`, so a restart within the same cron slot never fires it twice.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ._config import StackConfig, StackError
from ._net import http_request
from ._process import (
    is_running,
    load_record,
    remove_record,
    save_record,
    spawn,
    state_lock,
    stop,
)

# A subfolder: state_dir/*.json are process records.
JOBS_FILE = "scheduler/jobs.json"
STATE_FILE = "scheduler/last-fires.json"
NAME = "scheduler"


@dataclass(frozen=True)
class Job:
    name: str
    topic: str
    cron: str | None = None
    timezone: str = "UTC"
    interval_seconds: float | None = None  # local-only: sub-minute ticks (the timer sweep)
    data: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    def next_fire(self, after: datetime) -> datetime:
        if self.interval_seconds is not None:
            return after + timedelta(seconds=self.interval_seconds)
        from croniter import croniter

        assert self.cron is not None, f"job {self.name} has neither cron nor interval"
        local = after.astimezone(ZoneInfo(self.timezone))
        nxt: datetime = croniter(self.cron, local).get_next(datetime)
        return nxt.astimezone(UTC)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def write_jobs(config: StackConfig, jobs: list[Job]) -> Path:
    """Replace the job list atomically; a running scheduler picks it up within a second."""
    path = config.state_dir / JOBS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([j.to_json() for j in jobs], indent=2))
    tmp.replace(path)
    return path


def read_jobs(config: StackConfig) -> list[Job]:
    path = config.state_dir / JOBS_FILE
    if not path.exists():
        return []
    return [Job(**j) for j in json.loads(path.read_text())]


def start_scheduler(config: StackConfig) -> None:
    """Run the scheduler process (reused while it runs)."""
    with state_lock(config.state_dir):
        old = load_record(config.state_dir, NAME)
        if old is not None and is_running(old):
            return
        if old is not None:
            stop(old)
            remove_record(config.state_dir, NAME)
        cmd = (sys.executable, "-m", "orchestrator.emulators", "scheduler", str(config.state_dir))
        record = spawn(
            NAME,
            "scheduler",
            cmd,
            env={**os.environ, **config.env()},
            log=config.log_dir / f"{NAME}.log",
            cwd=Path.cwd(),
            port=0,
        )
        save_record(config.state_dir, record)


def publish(config: StackConfig, job: Job) -> None:
    url = (
        f"http://{config.host}:{config.pubsub_port}/v1/projects/{config.project}"
        f"/topics/{job.topic}:publish"
    )
    message: dict[str, Any] = {"data": base64.b64encode(job.data.encode()).decode()}
    if job.attributes:
        message["attributes"] = job.attributes
    body_out = json.dumps({"messages": [message]}).encode()
    code, body = http_request("POST", url, body_out, headers={"Content-Type": "application/json"})
    if code != 200:
        raise StackError(f"publishing job {job.name!r} to {job.topic}: HTTP {code} {body[:200]!r}")


def run(
    config: StackConfig,
    *,
    now: Any = lambda: datetime.now(UTC),
    sleep: Any = time.sleep,
    iterations: int | None = None,
    send: Any = None,
) -> None:
    """The loop: fire every job whose next fire time has come, then wait for the next one."""
    state_path = config.state_dir / STATE_FILE
    last: dict[str, str] = json.loads(state_path.read_text()) if state_path.exists() else {}
    jobs_mtime = -1.0
    jobs: list[Job] = []
    due: dict[str, datetime] = {}
    n = 0
    while iterations is None or n < iterations:
        n += 1
        path = config.state_dir / JOBS_FILE
        mtime = path.stat().st_mtime if path.exists() else 0.0
        if mtime != jobs_mtime:
            jobs_mtime, jobs = mtime, read_jobs(config)
            current = now()
            # Resume after the later of now and the last fire: missed fires are not replayed.
            due = {
                j.name: j.next_fire(max(current, _parse(last.get(j.name)) or current)) for j in jobs
            }
        current = now()
        for job in jobs:
            if due[job.name] <= current:
                try:
                    (send or publish)(config, job)
                    last[job.name] = due[job.name].isoformat()
                    if job.interval_seconds is None:
                        state_path.write_text(json.dumps(last))
                        print(f"fired {job.name} for {due[job.name].isoformat()}", flush=True)
                except (OSError, StackError) as e:
                    print(f"job {job.name}: {e}", flush=True)  # Pub/Sub down: try next slot
                due[job.name] = job.next_fire(current)
        wait = min([(d - now()).total_seconds() for d in due.values()] + [1.0])
        sleep(max(0.02, wait))


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def main(argv: list[str]) -> None:
    state_dir = Path(argv[0])
    config = StackConfig.from_env()
    config = StackConfig(
        project=config.project,
        host=config.host,
        pubsub_port=int(os.environ["PUBSUB_EMULATOR_HOST"].rsplit(":", 1)[1]),
        state_dir=state_dir,
    )
    run(config)
