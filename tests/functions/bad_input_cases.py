"""The bad-input case table: malformed messages for each function's topic, and their verdicts.

Cases with a `bug` are parametrized as `xfail(strict=True)`; each reason says what is wrong.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.functions.bad_input_events import (
    EXISTING_RUN,
    RUN_REQUESTED,
    SAMPLE_VERSION,
    TASK_FAILED,
    TASK_REQUESTED,
    TASK_SUCCEEDED,
    TOPICS,
    Case,
    _ce,
    _json,
    _new_run_id,
    _no_such,
    _run_case,
    _run_requested,
    _structured,
    _task_failed,
    _task_requested,
    _task_succeeded,
)


def _cases() -> list[Case]:
    run_id = _new_run_id
    unknown_flow, unknown_version = _no_such("flow"), f"0000{uuid.uuid4().hex[:12]}"
    unknown_run_t, unknown_run_s, unknown_run_f = (_no_such("run") for _ in range(3))
    deep = b"[" * 100_000 + b"]" * 100_000
    return [
        # --- run_starter (kumoflow-run-requests) ---------------------------------------------
        Case(
            "run/data-not-json-no-ce-attributes",
            TOPICS.runs,
            {},
            b"this is not JSON",
            "run_starter",
            "no ce-* attributes and its data is not a JSON CloudEvent",
            decoded=False,
        ),
        Case(
            "run/deeply-nested-json-no-ce-attributes",
            TOPICS.runs,
            {},
            deep,
            "run_starter",
            "JSON",
            decoded=False,
        ),
        Case(
            "run/structured-without-specversion",
            TOPICS.runs,
            {},
            _structured(RUN_REQUESTED, _run_requested(), specversion=False),
            "run_starter",
            "not a structured CloudEvent (no specversion)",
            decoded=False,
        ),
        Case(
            "run/structured-data-fails-contract",
            TOPICS.runs,
            {},
            _structured(RUN_REQUESTED, {"flow": "sample-flow", "params": "json_data=[]"}),
            "run_starter",
            "dev.kumoflow.run.requested data fails its contract: params: Input should be",
            decoded=False,
        ),
        _run_case(
            "run/unknown-ce-type",
            _ce("dev.kumoflow.run.exploded"),
            _run_requested(run_id()),
            "unknown event type 'dev.kumoflow.run.exploded'",
            decoded=False,
        ),
        _run_case(
            "run/missing-ce-id",
            _ce(RUN_REQUESTED, drop=("id",)),
            _run_requested(run_id()),
            "CloudEvent lacks required attribute(s): id",
            decoded=False,
        ),
        _run_case(
            "run/ce-time-not-rfc3339",
            _ce(RUN_REQUESTED, time="yesterday"),
            _run_requested(run_id()),
            "CloudEvent time 'yesterday' is not RFC 3339",
            decoded=False,
        ),
        _run_case(
            "run/contract-missing-field",
            _ce(RUN_REQUESTED),
            {"params": {"json_data": "[]"}, "run_id": run_id()},
            "run.requested data fails its contract: flow: Field required",
            decoded=False,
        ),
        _run_case(
            "run/contract-wrong-type",
            _ce(RUN_REQUESTED),
            _run_requested(run_id(), flow=42),
            "run.requested data fails its contract: flow: Input should be a valid string",
            decoded=False,
        ),
        _run_case(
            "run/contract-extra-field",
            _ce(RUN_REQUESTED),
            _run_requested(run_id(), urgency="high"),
            "run.requested data fails its contract: urgency: Extra inputs are not permitted",
            decoded=False,
        ),
        _run_case(
            "run/unregistered-flow",
            _ce(RUN_REQUESTED),
            _run_requested(run_id(), flow=unknown_flow),
            f"NotFoundError: flow {unknown_flow!r} is not registered",
        ),
        _run_case(
            "run/unknown-flow-version",
            _ce(RUN_REQUESTED),
            _run_requested(run_id(), flow_version=unknown_version),
            f"NotFoundError: no flow version {unknown_version!r} is registered",
        ),
        _run_case(
            "run/version-of-another-flow",
            _ce(RUN_REQUESTED),
            _run_requested(run_id(), flow="map-reduce", flow_version=SAMPLE_VERSION),
            f"ParameterError: version {SAMPLE_VERSION} is flow 'sample-flow', not 'map-reduce'",
        ),
        _run_case(
            "run/unknown-param",
            _ce(RUN_REQUESTED),
            _run_requested(run_id(), params={"json_data": "[]", "colour": "red"}),
            "ParameterError: flow 'sample-flow' has no parameter 'colour'",
        ),
        _run_case(
            "run/missing-required-param",
            _ce(RUN_REQUESTED),
            _run_requested(run_id(), params={"bucket_name": "demo"}),
            "ParameterError: flow 'sample-flow' needs parameter 'json_data'",
        ),
        _run_case(
            "run/mapped-param-not-a-list",
            _ce(RUN_REQUESTED),
            _run_requested(run_id(), flow="map-reduce", params={"items": 5}),
            "ParameterError: flow 'map-reduce': parameters do not fit its signature: 'items': "
            "Input should be a valid list",
        ),
        Case(
            "run/task-event-to-run-topic",
            TOPICS.runs,
            _ce(TASK_SUCCEEDED),
            _json(_task_succeeded()),
            "run_starter",
            "run_starter takes dev.kumoflow.run.requested, not dev.kumoflow.task.succeeded",
        ),
        _run_case(
            "run/run-id-with-slash",
            _ce(RUN_REQUESTED),
            _run_requested(f"bad/{uuid.uuid4().hex[:8]}"),
            "run",
        ),
        _run_case(
            "run/reserved-flow-version",
            _ce(RUN_REQUESTED),
            _run_requested(run_id(), flow_version="__nope__"),
            "version",
        ),
        _run_case(
            "run/params-over-1-mib",
            _ce(RUN_REQUESTED),
            _run_requested(run_id(), params={"json_data": "x" * 1_100_000}),
            "params",
        ),
        # --- task_worker (kumoflow-task-requests) --------------------------------------------
        Case(
            "task/data-not-json-binary-mode",
            TOPICS.tasks,
            _ce(TASK_REQUESTED),
            b"{not json",
            "task_worker",
            "task.requested data fails its contract: data: Invalid JSON",
            decoded=False,
        ),
        Case(
            "task/missing-ce-source",
            TOPICS.tasks,
            _ce(TASK_REQUESTED, drop=("source",)),
            _json(_task_requested()),
            "task_worker",
            "CloudEvent lacks required attribute(s): source",
            decoded=False,
        ),
        Case(
            "task/contract-missing-field",
            TOPICS.tasks,
            _ce(TASK_REQUESTED),
            _json({k: v for k, v in _task_requested().items() if k != "attempt"}),
            "task_worker",
            "task.requested data fails its contract: attempt: Field required",
            decoded=False,
        ),
        Case(
            "task/contract-wrong-type",
            TOPICS.tasks,
            _ce(TASK_REQUESTED),
            _json(_task_requested(attempt="first")),
            "task_worker",
            "task.requested data fails its contract: attempt: Input should be a valid integer",
            decoded=False,
        ),
        Case(
            "task/contract-extra-field",
            TOPICS.tasks,
            _ce(TASK_REQUESTED),
            _json(_task_requested(priority=1)),
            "task_worker",
            "task.requested data fails its contract: priority: Extra inputs are not permitted",
            decoded=False,
        ),
        Case(
            "task/unknown-run",
            TOPICS.tasks,
            _ce(TASK_REQUESTED),
            _json(_task_requested(unknown_run_t)),
            "task_worker",
            f"NotFoundError: task.requested names run {unknown_run_t!r}, which does not exist",
        ),
        Case(
            "task/unknown-task-of-a-real-run",
            TOPICS.tasks,
            _ce(TASK_REQUESTED),
            _json(_task_requested(key="no-such-task")),
            "task_worker",
            f"BadInputError: run {EXISTING_RUN!r} has no task 'no-such-task'",
        ),
        _run_case(
            "task/run-request-to-task-topic",
            _ce(RUN_REQUESTED),
            _run_requested(run_id()),
            "task_worker takes dev.kumoflow.task.requested, not dev.kumoflow.run.requested",
            topic=TOPICS.tasks,
            source="task_worker",
        ),
        Case(
            "task/run-id-with-slash",
            TOPICS.tasks,
            _ce(TASK_REQUESTED),
            _json(_task_requested(f"bad/{uuid.uuid4().hex[:8]}")),
            "task_worker",
            "run",
        ),
        # --- orchestrator (kumoflow-task-events) ---------------------------------------------
        Case(
            "events/data-not-json-no-ce-attributes",
            TOPICS.events,
            {},
            b"<event>not json</event>",
            "orchestrator",
            "no ce-* attributes and its data is not a JSON CloudEvent",
            decoded=False,
        ),
        Case(
            "events/missing-ce-id-and-ce-source",
            TOPICS.events,
            _ce(TASK_SUCCEEDED, drop=("id", "source")),
            _json(_task_succeeded()),
            "orchestrator",
            "CloudEvent lacks required attribute(s): id, source",
            decoded=False,
        ),
        Case(
            "events/succeeded-at-a-foreign-location",
            TOPICS.events,
            _ce(TASK_SUCCEEDED),
            _json(_task_succeeded(result_uri="gs://attacker-bucket/payload.json")),
            "orchestrator",
            f"this task's result can only be at gs://kumoflow-results/runs/{EXISTING_RUN}/"
            "create-csv-file.json",
        ),
        Case(
            "events/succeeded-naming-a-pickle",
            TOPICS.events,
            _ce(TASK_SUCCEEDED),
            _json(
                _task_succeeded(
                    result_uri=f"gs://kumoflow-results/runs/{EXISTING_RUN}/create-csv-file.pickle"
                )
            ),
            "orchestrator",
            "names its result at",
        ),
        Case(
            "events/succeeded-missing-field",
            TOPICS.events,
            _ce(TASK_SUCCEEDED),
            _json({k: v for k, v in _task_succeeded().items() if k != "result_uri"}),
            "orchestrator",
            "task.succeeded data fails its contract: result_uri: Field required",
            decoded=False,
        ),
        Case(
            "events/succeeded-wrong-type",
            TOPICS.events,
            _ce(TASK_SUCCEEDED),
            _json(_task_succeeded(started_at="not a time")),
            "orchestrator",
            "task.succeeded data fails its contract: started_at: Input should be a valid datetime",
            decoded=False,
        ),
        Case(
            "events/failed-nested-wrong-type",
            TOPICS.events,
            _ce(TASK_FAILED),
            _json(_task_failed(error="boom")),
            "orchestrator",
            "task.failed data fails its contract: error: Input should be an object",
            decoded=False,
        ),
        Case(
            "events/failed-extra-field",
            TOPICS.events,
            _ce(TASK_FAILED),
            _json(_task_failed(retry_in=5)),
            "orchestrator",
            "task.failed data fails its contract: retry_in: Extra inputs are not permitted",
            decoded=False,
        ),
        Case(
            "events/succeeded-unknown-run",
            TOPICS.events,
            _ce(TASK_SUCCEEDED),
            _json(_task_succeeded(unknown_run_s)),
            "orchestrator",
            f"NotFoundError: no run {unknown_run_s!r}",
        ),
        Case(
            "events/failed-unknown-run",
            TOPICS.events,
            _ce(TASK_FAILED),
            _json(_task_failed(unknown_run_f)),
            "orchestrator",
            f"NotFoundError: no run {unknown_run_f!r}",
        ),
        Case(
            "events/task-request-to-events-topic",
            TOPICS.events,
            _ce(TASK_REQUESTED),
            _json(_task_requested()),
            "orchestrator",
            "orchestrator takes task.succeeded/task.failed, not dev.kumoflow.task.requested",
        ),
        _run_case(
            "events/run-request-to-events-topic",
            _ce(RUN_REQUESTED),
            _run_requested(run_id()),
            "orchestrator takes task.succeeded/task.failed, not dev.kumoflow.run.requested",
            topic=TOPICS.events,
            source="orchestrator",
        ),
        Case(
            "events/empty-run-id",
            TOPICS.events,
            _ce(TASK_SUCCEEDED),
            _json(_task_succeeded("")),
            "orchestrator",
            "run",
        ),
    ]


CASES = _cases()
assert len({c.id for c in CASES}) == len(CASES)


def _params(cases: list[Case], bug_of: Callable[[Case], str | None]) -> list[Any]:
    out = []
    for case in cases:
        bug = bug_of(case)
        marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out
