"""`kumoflow schedules`: the flows' Cloud Scheduler jobs listed, paused and resumed over the REST
API, against a local stand-in of it (an HTTP server speaking Cloud Scheduler v1's jobs surface:
list with pages, pause, resume, 403 and 404 as Google answers them)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.cloud import Action, JobState, Scheduler, deployed_region
from orchestrator.errors import KumoflowError, NotFoundError
from orchestrator.runtime import JOB_ATTRIBUTE

pytestmark = pytest.mark.usefixtures("restored_environ")


_PATH = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/jobs(?:/([^/:]+)(?::(\w+))?)?$")
PAGE = 2  # small pages: listing must follow nextPageToken


def _job(project: str, name: str, flow: str | None, cron: str = "0 3 * * *") -> dict[str, Any]:
    target: dict[str, Any] = {"topicName": f"projects/{project}/topics/kumoflow-schedules"}
    if flow is not None:
        target["attributes"] = {JOB_ATTRIBUTE: name}
    return {
        "name": f"projects/{project}/locations/asia-northeast1/jobs/{name}",
        "description": f"kumoflow: starts flow {flow}" if flow else "kumoflow: ticks the sweeper",
        "schedule": cron,
        "timeZone": "Asia/Tokyo",
        "state": "ENABLED",
        "pubsubTarget": target,
    }


class StandIn(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.jobs: dict[str, dict[str, Any]] = {}
        for name, flow in [
            ("kumoflow-nightly-0", "nightly"),
            ("kumoflow-nightly-1", "nightly"),
            ("kumoflow-report-0", "report"),
            ("kumoflow-timer-tick", None),  # the sweeper's tick: no flow's
            ("other-report-0", "report"),  # another installation's prefix
        ]:
            self.jobs[name] = _job("p", name, flow)


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, status: str, message: str) -> None:
        self._send(code, {"error": {"code": code, "status": status, "message": message}})

    def _route(self) -> tuple[str, str, str | None, str | None] | None:
        match = _PATH.match(urlparse(self.path).path)
        if match is None:
            self._error(404, "NOT_FOUND", "no such path")
            return None
        project, region, job, verb = match.groups()
        if project == "denied":
            self._error(403, "PERMISSION_DENIED", "The caller does not have permission")
            return None
        if region != "asia-northeast1":
            self._error(404, "NOT_FOUND", f"Location {region} not found")
            return None
        return project, region, job, verb

    def do_GET(self) -> None:
        route = self._route()
        if route is None:
            return
        names = sorted(self.server.jobs)
        query = parse_qs(urlparse(self.path).query)
        start = int(query.get("pageToken", ["0"])[0])
        size = min(PAGE, int(query.get("pageSize", [str(PAGE)])[0]))
        body: dict[str, Any] = {"jobs": [self.server.jobs[n] for n in names[start : start + size]]}
        if start + size < len(names):
            body["nextPageToken"] = str(start + size)
        self._send(200, body)

    def do_POST(self) -> None:
        route = self._route()
        if route is None:
            return
        _, _, job, verb = route
        if job not in self.server.jobs:
            self._error(404, "NOT_FOUND", f"Job {job} not found")
            return
        self.server.jobs[job]["state"] = {"pause": "PAUSED", "resume": "ENABLED"}[str(verb)]
        self._send(200, self.server.jobs[job])


@pytest.fixture
def api() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _scheduler(api: StandIn, project: str = "p", region: str = "asia-northeast1") -> Scheduler:
    endpoint = f"http://127.0.0.1:{api.server_address[1]}/v1"
    return Scheduler(project=project, region=region, session=requests.Session(), endpoint=endpoint)


def test_ls_lists_only_this_installations_flow_jobs_across_pages(api: StandIn) -> None:
    jobs = _scheduler(api).jobs()
    assert [(j.job, j.flow, j.state) for j in jobs] == [
        ("kumoflow-nightly-0", "nightly", JobState.ENABLED),
        ("kumoflow-nightly-1", "nightly", JobState.ENABLED),
        ("kumoflow-report-0", "report", JobState.ENABLED),
    ]


def test_pause_by_flow_then_resume_by_job(api: StandIn) -> None:
    scheduler = _scheduler(api)
    paused = [scheduler.act(j.job, Action.PAUSE) for j in scheduler.select(["nightly"])]
    assert [(j.job, j.state) for j in paused] == [
        ("kumoflow-nightly-0", JobState.PAUSED),
        ("kumoflow-nightly-1", JobState.PAUSED),
    ]
    assert api.jobs["kumoflow-report-0"]["state"] == "ENABLED"
    assert api.jobs["other-report-0"]["state"] == "ENABLED"
    (resumed,) = [
        scheduler.act(j.job, Action.RESUME) for j in scheduler.select(["kumoflow-nightly-1"])
    ]
    assert resumed.state is JobState.ENABLED
    assert api.jobs["kumoflow-nightly-0"]["state"] == "PAUSED"


def test_an_unknown_name_pauses_nothing_and_lists_the_jobs(api: StandIn) -> None:
    with pytest.raises(NotFoundError, match="kumoflow-report-0"):
        _scheduler(api).select(["nightly", "nope"])
    assert {j["state"] for j in api.jobs.values()} == {"ENABLED"}


def test_permission_denied_names_the_role(api: StandIn) -> None:
    with pytest.raises(KumoflowError, match=r"roles/cloudscheduler\.viewer"):
        _scheduler(api, project="denied").jobs()


def test_a_wrong_region_says_so(api: StandIn) -> None:
    with pytest.raises(NotFoundError, match="--region"):
        _scheduler(api, region="us-central1").jobs()


def test_the_region_comes_from_the_rendered_deploy(tmp_path: Path) -> None:
    assert deployed_region(tmp_path) is None
    (tmp_path / "terraform.tfvars.json").write_text(json.dumps({"region": "asia-northeast1"}))
    assert deployed_region(tmp_path) == "asia-northeast1"


def test_the_cli_wants_names_or_all() -> None:
    result = CliRunner().invoke(main, ["schedules", "pause", "--project", "p", "--region", "r"])
    assert result.exit_code == 2
    assert "--all" in result.output


def test_the_cli_without_credentials_says_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    args = ["schedules", "ls", "--project", "p", "--region", "r", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "gcloud auth application-default login" in json.loads(result.output)["error"]
