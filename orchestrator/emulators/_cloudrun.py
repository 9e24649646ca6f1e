"""A fake Cloud Run Admin API (v2 jobs and executions) for the local stack.

Google ships no Cloud Run emulator. This one speaks the REST surface the `google-cloud-run`
client uses (`transport="rest"`, `api_endpoint=CLOUD_RUN_EMULATOR_HOST`): create, get, update
and delete jobs, run a job, get and cancel executions, and the long-running operations those
return (always already done). An execution runs its container's `command` + `args` as a local
subprocess with the job's env; the image is recorded, never pulled. Exit code, retries
(`maxRetries`), the task timeout and cancellation behave as on Cloud Run, and the output is
served at the execution's `logUri`.

    python _cloudrun.py --host 127.0.0.1 --port 8686 --state-dir DIR   (as the stack starts it)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import threading
import uuid
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from orchestrator.emulators._rest import ApiError, JsonHandler, seconds

_JOB = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+)/jobs(?:/([^/:]+))?(?::(run))?$")
_EXEC = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/]+/executions/[^/:]+)(:cancel)?$")
_OP = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/operations/[^/]+)$")
_EXECUTION_TYPE = "type.googleapis.com/google.cloud.run.v2.Execution"
_JOB_TYPE = "type.googleapis.com/google.cloud.run.v2.Job"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Service:
    """Jobs, executions and operations, in memory; executions run as subprocesses."""

    def __init__(self, base_url: str, state_dir: Path) -> None:
        self.base_url = base_url
        self.logs = state_dir / "cloudrun"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.executions: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.RLock()

    def _operation(self, parent: str, metadata: dict[str, Any], response: dict[str, Any]) -> Any:
        name = f"{parent}/operations/{uuid.uuid4().hex}"
        op = {"name": name, "done": True, "metadata": metadata, "response": response}
        self.operations[name] = op
        return op

    def create_job(self, parent: str, job_id: str, body: dict[str, Any]) -> Any:
        name = f"{parent}/jobs/{job_id}"
        with self.lock:
            if name in self.jobs:
                raise ApiError(409, "ALREADY_EXISTS", f"Resource '{job_id}' already exists.")
            job = {
                **body,
                "name": name,
                "uid": uuid.uuid4().hex,
                "generation": "1",
                "createTime": _now(),
                "updateTime": _now(),
                "etag": uuid.uuid4().hex,
                "executionCount": 0,
            }
            self.jobs[name] = job
            return self._operation(parent, {"@type": _JOB_TYPE, **job}, {"@type": _JOB_TYPE, **job})

    def get_job(self, name: str) -> dict[str, Any]:
        job = self.jobs.get(name)
        if job is None:
            raise ApiError(404, "NOT_FOUND", f"Resource '{name}' was not found")
        return job

    def update_job(self, name: str, body: dict[str, Any]) -> Any:
        with self.lock:
            job = self.get_job(name)
            job.update({k: v for k, v in body.items() if k not in ("name", "uid", "createTime")})
            job["generation"] = str(int(job["generation"]) + 1)
            job["updateTime"], job["etag"] = _now(), uuid.uuid4().hex
            parent = name.rsplit("/jobs/", 1)[0]
            return self._operation(parent, {"@type": _JOB_TYPE, **job}, {"@type": _JOB_TYPE, **job})

    def delete_job(self, name: str) -> Any:
        with self.lock:
            job = self.jobs.pop(name, None)
            if job is None:
                raise ApiError(404, "NOT_FOUND", f"Resource '{name}' was not found")
            parent = name.rsplit("/jobs/", 1)[0]
            return self._operation(parent, {"@type": _JOB_TYPE, **job}, {"@type": _JOB_TYPE, **job})

    def run_job(self, name: str, body: dict[str, Any]) -> Any:
        with self.lock:
            job = self.get_job(name)
            job["executionCount"] = int(job.get("executionCount", 0)) + 1
            exec_id = f"{name.rsplit('/', 1)[1]}-{uuid.uuid4().hex[:5]}"
            ex_name = f"{name}/executions/{exec_id}"
            template = job.get("template", {})
            task = template.get("template", {})
            overrides = body.get("overrides", {})
            execution = {
                "name": ex_name,
                "uid": uuid.uuid4().hex,
                "job": name.rsplit("/", 1)[1],
                "labels": {**job.get("labels", {}), **template.get("labels", {})},
                "createTime": _now(),
                "startTime": _now(),
                "taskCount": 1,
                "parallelism": 1,
                "runningCount": 1,
                "reconciling": True,
                "logUri": f"{self.base_url}/logs/{exec_id}",
                "template": task,
                "etag": uuid.uuid4().hex,
            }
            self.executions[ex_name] = execution
            job["latestCreatedExecution"] = {"name": ex_name, "createTime": execution["createTime"]}
            threading.Thread(
                target=self._execute, args=(ex_name, task, overrides), daemon=True
            ).start()
            parent = name.rsplit("/jobs/", 1)[0]
            meta = {"@type": _EXECUTION_TYPE, **execution}
            return self._operation(parent, meta, meta)

    def _execute(self, ex_name: str, task: dict[str, Any], overrides: dict[str, Any]) -> None:
        container = (task.get("containers") or [{}])[0]
        override = (overrides.get("containerOverrides") or [{}])[0]
        argv = [*container.get("command", []), *(override.get("args") or container.get("args", []))]
        env = {**os.environ}
        for item in [*container.get("env", []), *override.get("env", [])]:
            env[item["name"]] = item.get("value", "")
        timeout = seconds(overrides.get("timeout") or task.get("timeout"), 600.0)
        retries = int(task.get("maxRetries", 3))
        log_path = self.logs / f"{ex_name.rsplit('/', 1)[1]}.log"
        outcome: tuple[str, str] = ("CONDITION_FAILED", "no command to run")
        for attempt in range(retries + 1):
            if not argv:
                break
            with open(log_path, "ab") as log:
                try:
                    proc = subprocess.Popen(
                        argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                    )
                except OSError as e:
                    outcome = ("CONDITION_FAILED", f"could not start the container command: {e}")
                    break
                with self.lock:
                    if self.executions[ex_name].get("cancelledCount"):
                        proc.kill()
                    self.procs[ex_name] = proc
                try:
                    code = proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _kill(proc)
                    outcome = (
                        "CONDITION_FAILED",
                        f"The configured timeout of {timeout:g}s was reached.",
                    )
                    break
            with self.lock:
                if self.executions[ex_name].get("cancelledCount"):
                    return  # cancel() recorded the end
            if code == 0:
                outcome = ("CONDITION_SUCCEEDED", "Execution completed successfully.")
                break
            outcome = (
                "CONDITION_FAILED",
                f"Task {ex_name.rsplit('/', 1)[1]}-task0 failed with exit code {code}.",
            )
            if attempt < retries:
                with self.lock:
                    self.executions[ex_name]["retriedCount"] = attempt + 1
        self._finish(ex_name, *outcome)

    def _finish(self, ex_name: str, state: str, message: str, *, cancelled: bool = False) -> None:
        with self.lock:
            ex = self.executions[ex_name]
            if ex.get("completionTime"):
                return
            ex.update(runningCount=0, reconciling=False, completionTime=_now())
            key = (
                "cancelledCount"
                if cancelled
                else ("succeededCount" if state == "CONDITION_SUCCEEDED" else "failedCount")
            )
            ex[key] = 1
            ex["conditions"] = [
                {
                    "type": "Completed",
                    "state": state,
                    "message": message,
                    "lastTransitionTime": _now(),
                }
            ]
            self.procs.pop(ex_name, None)

    def get_execution(self, name: str) -> dict[str, Any]:
        ex = self.executions.get(name)
        if ex is None:
            raise ApiError(404, "NOT_FOUND", f"Resource '{name}' was not found")
        return ex

    def cancel_execution(self, name: str) -> Any:
        with self.lock:
            ex = self.get_execution(name)
            if not ex.get("completionTime"):
                ex["cancelledCount"] = 1
                proc = self.procs.get(name)
                if proc is not None:
                    _kill(proc)
                self._finish(
                    name, "CONDITION_FAILED", "The execution was cancelled.", cancelled=True
                )
            parent = name.rsplit("/jobs/", 1)[0]
            meta = {"@type": _EXECUTION_TYPE, **ex}
            return self._operation(parent, meta, meta)

    def shutdown(self) -> None:
        with self.lock:
            for proc in self.procs.values():
                _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the command's children too
    proc.wait()


def handler(service: Service) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def dispatch(self, method: str, path: str, params: dict[str, str]) -> Any:
            if method == "GET" and path == "/":
                return {"service": "kumoflow fake Cloud Run Admin API v2"}
            if method == "GET" and path.startswith("/logs/"):
                log = service.logs / f"{path[len('/logs/') :]}.log"
                if not log.is_file():
                    raise ApiError(404, "NOT_FOUND", "no such log")
                return log.read_bytes()
            if m := _OP.match(path):
                op = service.operations.get(m.group(1))
                if op is None:
                    raise ApiError(404, "NOT_FOUND", f"operation {m.group(1)} not found")
                return op
            if m := _EXEC.match(path):
                if method == "POST" and m.group(2):
                    return service.cancel_execution(m.group(1))
                if method == "GET":
                    return service.get_execution(m.group(1))
            if m := _JOB.match(path):
                parent, job_id, verb = m.groups()
                if job_id is None and method == "POST":
                    return service.create_job(parent, params.get("jobId", ""), self.body())
                name = f"{parent}/jobs/{job_id}"
                if verb == "run" and method == "POST":
                    return service.run_job(name, self.body())
                if method == "GET":
                    return service.get_job(name)
                if method == "PATCH":
                    return service.update_job(name, self.body())
                if method == "DELETE":
                    return service.delete_job(name)
            raise ApiError(404, "NOT_FOUND", f"{method} {path} is not part of this fake")

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8686)
    parser.add_argument("--state-dir", type=Path, default=Path("."))
    ns = parser.parse_args(argv)
    service = Service(f"http://{ns.host}:{ns.port}", ns.state_dir)
    server = ThreadingHTTPServer((ns.host, ns.port), handler(service))

    def stop(*_: object) -> None:
        service.shutdown()  # a stopped stack leaves no job processes behind
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
