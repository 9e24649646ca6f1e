"""Golden JSON pins the wire format of every event and document; schemas export."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from examples.map_reduce import map_reduce
from orchestrator.contracts import (
    EVENT_TYPES,
    TIMER_DUE,
    Attempt,
    ErrorInfo,
    FlowSpec,
    HooksRequested,
    HookState,
    Run,
    RunFailed,
    RunNotification,
    RunRequested,
    RunStatus,
    RunSucceeded,
    TaskFailed,
    TaskRequested,
    TaskRun,
    TaskSucceeded,
    TimerDue,
    TriggerInfo,
    flow_version,
    json_schemas,
)

GOLDEN = Path(__file__).parent / "golden"
T = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ERROR = ErrorInfo(type="RuntimeError", message="boom", traceback=None, task="create-csv-file")

SAMPLES: dict[str, BaseModel] = {
    "dev.kumoflow.run.requested": RunRequested(
        flow="sample-flow",
        params={"json_data": "[]"},
        trigger=TriggerInfo(kind="pubsub", source="projects/p/topics/t", event_id="42"),
    ),
    "dev.kumoflow.hooks.requested": HooksRequested(
        run_id="r1", flow_version="0123456789abcdef0123", attempt=1, state=HookState.FAILED
    ),
    "dev.kumoflow.task.requested": TaskRequested(
        run_id="r1", flow_version="0123456789abcdef0123", key="create-csv-file", attempt=1
    ),
    "dev.kumoflow.task.succeeded": TaskSucceeded(
        run_id="r1",
        key="create-csv-file",
        attempt=1,
        token="5f0c6a3e9b2d4c1e8a7f6b5c4d3e2f10",
        worker="w1/5f0c6a3e",
        started_at=T,
        ended_at=T,
        result_uri="gs://kumoflow-results/runs/r1/create-csv-file.json",
    ),
    "dev.kumoflow.task.failed": TaskFailed(
        run_id="r1",
        key="create-csv-file",
        attempt=2,
        token="0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        worker="w1/0a1b2c3d",
        started_at=T,
        ended_at=T,
        error=ERROR,
        retryable=True,
    ),
    "dev.kumoflow.run.succeeded": RunSucceeded(
        run_id="r1",
        flow="sample-flow",
        flow_version="0123456789abcdef0123",
        ended_at=T,
        result_uri="gs://kumoflow-results/runs/r1/upload-to-gcs.json",
    ),
    "dev.kumoflow.run.failed": RunFailed(
        run_id="r1",
        flow="sample-flow",
        flow_version="0123456789abcdef0123",
        error=ERROR,
        ended_at=T,
    ),
}


def check_golden(name: str, value: BaseModel) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(json.loads(value.model_dump_json()), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.read_text() == text, f"wire format of {name} changed; review, then UPDATE_GOLDEN=1"
    assert type(value).model_validate_json(path.read_text()) == value


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_data_golden(event_type: str) -> None:
    sample = SAMPLES[event_type]
    assert isinstance(sample, EVENT_TYPES[event_type])
    check_golden(event_type, sample)


def test_flow_spec_golden_and_version_is_content_hash() -> None:
    assert set(map_reduce.spec.code) == {"examples.map_reduce"}  # compiled from the source
    # A fixed digest: the golden is about the wire format, not the example's bytes.
    spec = map_reduce.spec.model_copy(
        update={
            "source": map_reduce.spec.source.model_copy(update={"path": None}),
            "code": {"examples.map_reduce": "0123456789ab"},
        }
    )
    check_golden("FlowSpec.map-reduce", spec)
    assert flow_version(spec) == flow_version(FlowSpec.model_validate_json(spec.model_dump_json()))
    changed = spec.model_copy(update={"options": spec.options.model_copy(update={"retries": 1})})
    assert flow_version(changed) != flow_version(spec)
    # The same DAG over other code: another version.
    fixed = spec.model_copy(update={"code": {"examples.map_reduce": "ba9876543210"}})
    assert flow_version(fixed) != flow_version(spec)


def test_documents_stored_before_code_versions_read_and_keep_their_versions() -> None:
    """A spec stored without `code` reads with none and hashes as it did; an attempt stored
    without `code` reads with None."""
    stored = json.loads((GOLDEN / "FlowSpec.map-reduce.json").read_text())
    del stored["code"]
    old = FlowSpec.model_validate(stored)
    assert old.code == {}
    assert b'"code"' not in old.canonical_json()
    assert flow_version(old) == flow_version(FlowSpec.model_validate_json(old.canonical_json()))
    attempt = Attempt.model_validate({"number": 1, "status": "SUCCEEDED", "queued_at": T})
    assert attempt.code is None


def test_documents_golden() -> None:
    check_golden(
        "Run",
        Run(
            run_id="r1",
            flow="sample-flow",
            flow_version="0123456789abcdef0123",
            params={"json_data": "[]"},
            created_at=T,
        ),
    )
    check_golden(
        "TaskRun", TaskRun(run_id="r1", key="scale[0]", node="scale", name="scale", map_index=0)
    )


def test_contracts_reject_unknown_fields_and_bad_types() -> None:
    with pytest.raises(ValidationError, match="extra"):
        TypeAdapter(TaskRequested).validate_json(
            '{"run_id": "r", "flow_version": "v", "key": "k", "attempt": 1, "oops": 1}'
        )
    with pytest.raises(ValidationError, match="attempt"):
        TypeAdapter(TaskRequested).validate_json(
            '{"run_id": "r", "flow_version": "v", "key": "k", "attempt": "first"}'
        )


def test_json_schemas_cover_every_contract(tmp_path: Path) -> None:
    schemas = json_schemas()
    assert set(EVENT_TYPES) <= set(schemas)
    assert {"FlowSpec", "Run", "TaskRun", "Envelope"} <= set(schemas)
    from click.testing import CliRunner

    from orchestrator.cli import main

    result = CliRunner().invoke(main, ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "dev.kumoflow.task.requested.schema.json").read_text())
    assert written["required"] == ["run_id", "flow_version", "key", "attempt"]


def test_a_timer_push_and_a_run_notification_keep_their_wire_format() -> None:
    """The body of a timer's Cloud Task, and the body a generic notification webhook receives
    (documented in docs/howto/alerting.md): both exported as JSON Schemas too."""
    check_golden(TIMER_DUE, TimerDue(run_id="r1", entry_id="dispatch-create-csv-file-2", due_at=T))
    check_golden(
        "RunNotification",
        RunNotification(
            run_id="r1",
            flow="sample-flow",
            flow_version="0123456789abcdef0123",
            attempt=1,
            state=HookState.FAILED,
            status=RunStatus.FAILED,
            error=ERROR,
            started_at=T,
            ended_at=T,
            text="flow sample-flow run r1 Failed: RuntimeError: boom",
        ),
    )
    schemas = json_schemas()
    assert schemas[TIMER_DUE]["required"] == ["run_id", "entry_id", "due_at"]
    assert set(schemas["RunNotification"]["required"]) == {
        "run_id", "flow", "flow_version", "attempt", "state", "status", "text"
    }  # fmt: skip


def test_the_documented_notification_body_is_the_golden_one() -> None:
    """docs/howto/alerting.md shows a webhook's body: it is the contract's, field for field."""
    page = (Path(__file__).parents[2] / "docs" / "howto" / "alerting.md").read_text()
    shown = page.split('```json title="run-notification.json"\n', 1)[1].split("```", 1)[0]
    assert json.loads(shown) == json.loads((GOLDEN / "RunNotification.json").read_text())
    # And the run-events topic's example: a cancelled run's end, as the contract writes it.
    shown = page.split('```json title="run-cancelled.json"\n', 1)[1].split("```", 1)[0]
    cancelled = (GOLDEN / "dev.kumoflow.run.failed.cancelled.json").read_text()
    assert json.loads(shown) == json.loads(cancelled)


@pytest.mark.parametrize("event_type", ["dev.kumoflow.run.succeeded", "dev.kumoflow.run.failed"])
def test_the_run_events_topic_keeps_its_documented_schema(event_type: str) -> None:
    """What subscribers of kumoflow-run-events read (docs/howto/alerting.md): the exported
    JSON Schema of each event's data is golden too, so a change to it is seen and reviewed."""
    path = GOLDEN / f"{event_type}.schema.json"
    text = json.dumps(json_schemas()[event_type], indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.read_text() == text, f"schema of {event_type} changed; review, then UPDATE_GOLDEN=1"


def test_a_cancelled_run_and_a_task_end_keep_their_wire_format() -> None:
    check_golden(
        "dev.kumoflow.run.failed.cancelled",
        RunFailed(
            run_id="r1",
            flow="sample-flow",
            flow_version="0123456789abcdef0123",
            error=ErrorInfo(type="Cancelled", message="cancelled by an operator"),
            ended_at=T,
            status=RunStatus.CANCELLED,
        ),
    )
    check_golden(
        "dev.kumoflow.hooks.requested.task",
        HooksRequested(
            run_id="r1",
            flow_version="0123456789abcdef0123",
            attempt=1,
            state=HookState.COMPLETED,
            key="create-csv-file",
            task_attempt=2,
        ),
    )
