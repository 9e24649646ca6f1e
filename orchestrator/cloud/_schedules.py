"""`kumoflow schedules`: the Cloud Scheduler jobs of a deployed project's on_schedule triggers
(infra/triggers.tf names them `<name_prefix>-<flow>-<n>` and sets JOB_ATTRIBUTE on each), listed,
paused and resumed through the Cloud Scheduler REST API (v1) with an authorized session.

The REST API rather than google-cloud-scheduler: kumoflow installs no client for it, and a
session is all three calls need (the tests point it at a local stand-in of the API)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.adapters import name_prefix
from orchestrator.errors import KumoflowError, NotFoundError
from orchestrator.runtime import JOB_ATTRIBUTE

if TYPE_CHECKING:
    import requests

API = "https://cloudscheduler.googleapis.com/v1"
API_ENV = "KUMOFLOW_SCHEDULER_API"  # another endpoint (a stand-in, a private endpoint)
VIEWER_ROLE = "roles/cloudscheduler.viewer"
ADMIN_ROLE = "roles/cloudscheduler.admin"  # pause and resume
DESCRIPTION = "kumoflow: starts flow "  # infra/triggers.tf's description of a schedule's job


class JobState(StrEnum):
    ENABLED = "ENABLED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    UPDATE_FAILED = "UPDATE_FAILED"
    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"


class Action(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class ScheduleJob:
    job: str  # the job's id in its location
    flow: str
    cron: str
    time_zone: str
    state: JobState
    last_attempt: str | None = None

    @classmethod
    def of(cls, resource: dict[str, Any]) -> ScheduleJob:
        description = str(resource.get("description", ""))
        return cls(
            job=str(resource["name"]).rpartition("/jobs/")[2],
            flow=description.removeprefix(DESCRIPTION)
            if description.startswith(DESCRIPTION)
            else "",
            cron=str(resource.get("schedule", "")),
            time_zone=str(resource.get("timeZone", "")),
            state=JobState(resource.get("state", JobState.STATE_UNSPECIFIED)),
            last_attempt=resource.get("lastAttemptTime"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "flow": self.flow,
            "cron": self.cron,
            "time_zone": self.time_zone,
            "state": self.state.value,
            "last_attempt": self.last_attempt,
        }


def deployed_region(out: Path) -> str | None:
    """The Scheduler region a deploy rendered into `out` (terraform.tfvars.json), if any."""
    path = out / "terraform.tfvars.json"
    if not path.is_file():
        return None
    variables = json.loads(path.read_text())
    return str(variables.get("scheduler_region") or variables.get("region") or "") or None


@dataclass(frozen=True)
class Scheduler:
    """The flows' jobs in one project and location."""

    project: str
    region: str
    session: requests.Session
    endpoint: str = ""

    def _url(self, suffix: str = "") -> str:
        base = self.endpoint or os.environ.get(API_ENV) or API
        return f"{base.rstrip('/')}/projects/{self.project}/locations/{self.region}/jobs{suffix}"

    def _call(self, method: str, url: str, role: str, **kwargs: Any) -> dict[str, Any]:
        response = self.session.request(method, url, timeout=30, **kwargs)
        if response.status_code == 403:
            raise KumoflowError(
                f"no permission for Cloud Scheduler in project {self.project!r}: grant {role} "
                f"to the account of your Application Default Credentials ({response.text[:200]})"
            )
        if response.status_code == 404:
            raise NotFoundError(
                f"not found in Cloud Scheduler: {url.rpartition('/locations/')[2]} in project "
                f"{self.project!r} (is --region the region the jobs were deployed in?)"
            )
        if response.status_code >= 400:
            raise KumoflowError(
                f"Cloud Scheduler answered {response.status_code}: {response.text[:300]}"
            )
        body: dict[str, Any] = response.json() if response.content else {}
        return body

    def jobs(self) -> list[ScheduleJob]:
        """The jobs of the flows' schedules (this installation's prefix), by name."""
        found: list[ScheduleJob] = []
        token = ""
        while True:
            params = {"pageSize": "500", **({"pageToken": token} if token else {})}
            page = self._call("GET", self._url(), VIEWER_ROLE, params=params)
            for resource in page.get("jobs", []):
                attributes = resource.get("pubsubTarget", {}).get("attributes", {})
                job = ScheduleJob.of(resource)
                if JOB_ATTRIBUTE in attributes and job.job.startswith(f"{name_prefix()}-"):
                    found.append(job)
            token = str(page.get("nextPageToken", ""))
            if not token:
                return sorted(found, key=lambda j: j.job)

    def select(self, names: Sequence[str]) -> list[ScheduleJob]:
        """The jobs `names` name (a job id, or a flow: all its jobs); every name must match."""
        jobs = self.jobs()
        chosen = [j for j in jobs if j.job in names or j.flow in names]
        missing = [n for n in names if not any(n in (j.job, j.flow) for j in jobs)]
        if missing:
            known = ", ".join(j.job for j in jobs) or "none"
            raise NotFoundError(
                f"no schedule job of flow or name {', '.join(map(repr, missing))} in "
                f"{self.project}/{self.region} (jobs there: {known})"
            )
        return chosen

    def act(self, job: str, action: Action) -> ScheduleJob:
        resource = self._call("POST", self._url(f"/{job}:{action.value}"), ADMIN_ROLE, json={})
        return ScheduleJob.of(resource)
