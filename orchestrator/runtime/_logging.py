"""Cloud Logging structured JSON on stdout: one object per line with severity and context."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from datetime import UTC, datetime

LOGGER = logging.getLogger("kumoflow")
_CONTEXT = (
    "run_id", "task", "task_name", "attempt", "event_id", "event_type", "function", "flow",
    "reason",
)  # fmt: skip
# Also sent as Cloud Logging labels (indexed, so a run's or a task's lines filter cheaply).
_LABELS = ("run_id", "flow", "task")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "severity": record.levelname if record.levelname != "WARNING" else "WARNING",
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        for key in _CONTEXT:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if "run_id" in entry:  # one trace per run: Cloud Logging groups a run's lines
            entry["logging.googleapis.com/trace"] = run_trace(str(entry["run_id"]))
        stream = getattr(record, "stream", None)
        if stream is not None:
            entry["stream"] = stream
        labels = {k: str(entry[k]) for k in _LABELS if k in entry}
        if labels:
            entry["logging.googleapis.com/labels"] = labels
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def run_trace(run_id: str) -> str:
    """The Cloud Logging trace of a run: every line of every attempt of the run shares it."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "kumoflow-local")
    return f"projects/{project}/traces/{hashlib.sha256(run_id.encode()).hexdigest()[:32]}"


def json_logging() -> bool:
    """Whether this process writes Cloud Logging JSON (the functions do)."""
    return any(isinstance(h.formatter, JsonFormatter) for h in LOGGER.handlers)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Route the `kumoflow` logger to stdout as JSON (what Cloud Run ships to Cloud Logging)."""
    if json_logging():
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False
