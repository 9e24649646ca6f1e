"""JSON Schema export of every contract, for `kumoflow schema` and for non-Python producers."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from ._dag import FlowSpec
from ._events import EVENT_TYPES, TIMER_DUE, Envelope, RunNotification, TimerDue
from ._state import Run, TaskRun

DOCUMENTS: dict[str, type[BaseModel]] = {
    "FlowSpec": FlowSpec,
    "Run": Run,
    "TaskRun": TaskRun,
    "Envelope": Envelope,
    TIMER_DUE: TimerDue,  # a Cloud Task's body, not a Pub/Sub event
    "RunNotification": RunNotification,  # a notification webhook's body
}


def json_schemas() -> dict[str, dict[str, object]]:
    """Schema name -> JSON Schema, for documents and for each event type's data."""
    schemas = {name: model.model_json_schema() for name, model in DOCUMENTS.items()}
    schemas.update({etype: model.model_json_schema() for etype, model in EVENT_TYPES.items()})
    return schemas


def write_json_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(json_schemas().items()):
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
