"""Tasks and flows as methods, the run logger, log_prints and the run context on every backend:
the same flows in memory and on the local stack (where workers rebuild each method's object in
another process)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import RunStatus, TaskStatus
from tests.flows.methods import chatty_flow, method_sample, pipeline, receivers

ROWS = [{"name": "ann", "city": "Kyoto"}, {"name": "bo", "city": "Oslo"}]


def test_the_articles_shape_tasks_as_methods_of_a_module_level_instance_with_retries(
    backend: Any, tmp_path: Path
) -> None:
    counter = str(tmp_path / "csv")
    out = backend.run(
        method_sample, {"json_data": json.dumps(ROWS), "counter": counter, "failures": 2}
    )
    assert out.status is RunStatus.SUCCEEDED, out.run.error
    assert out.value == {
        "csv": "name;city\r\nann;Kyoto\r\nbo;Oslo\r\n",  # the instance's own delimiter
        "uri": "gs://demo/out.csv (3 lines)",
    }
    task = out.tasks["create-csv-file"]
    assert [a.status for a in task.attempts] == [
        TaskStatus.FAILED, TaskStatus.FAILED, TaskStatus.SUCCEEDED,
    ]  # fmt: skip
    # context.task_run.run_count is the attempt, as each attempt saw it
    assert Path(counter + ".run_counts").read_text() == "1\n2\n3\n"


def test_model_dataclass_class_and_static_receivers_map_and_cache(backend: Any) -> None:
    out = backend.run(receivers, {"name": "Ann", "values": [1, 2, 3]})
    assert out.status is RunStatus.SUCCEEDED, out.run.error
    assert out.value == {
        "greeting": "Hello, Ann!",
        "scaled": [10, 20, 30],
        "described": "Tools: 60",
    }
    assert {k for k in out.tasks if k.startswith("scale[")} == {"scale[0]", "scale[1]", "scale[2]"}


def test_a_flow_defined_as_a_method(backend: Any) -> None:
    out = backend.run(pipeline.run, {"values": [1, 2, 3]})
    assert out.status is RunStatus.SUCCEEDED, out.run.error
    assert out.value == 18  # the instance's factor, 3, was compiled into the DAG


@pytest.fixture
def run_records() -> Iterator[list[logging.LogRecord]]:
    """Records reaching `kumoflow.run` in this process (in-process runs log here)."""

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    records: list[logging.LogRecord] = []
    handler = Keep()
    logger = logging.getLogger("kumoflow.run")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _logged(backend: Any, run_id: str, records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    """What the run logged, as Cloud Logging entries (in memory: the records' same fields)."""
    if backend.name == "memory":
        keys = ("run_id", "flow", "task", "task_name", "attempt")
        return [
            {"message": r.getMessage(), **{k: getattr(r, k) for k in keys if hasattr(r, k)}}
            for r in records
            if getattr(r, "run_id", None) == run_id
        ]
    from orchestrator import emulators

    log = emulators.StackConfig.from_env().log_dir / "task-worker.log"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [
        {k: v for k, v in e.items() if k not in ("time", "severity")}
        for e in entries
        if e.get("run_id") == run_id and e.get("logger") == "kumoflow.run"
    ]


def test_run_logger_and_printed_lines_carry_the_runs_ids(
    backend: Any, run_records: list[logging.LogRecord]
) -> None:
    out = backend.run(chatty_flow, {"marker": "m-42"})
    assert out.status is RunStatus.SUCCEEDED, out.run.error
    run_id = out.run.run_id
    ids = {
        "run_id": run_id,
        "flow": "chatty",
        "task": "chatty",
        "task_name": "chatty",
        "attempt": 1,
    }
    logged = sorted(
        (
            {k: v for k, v in e.items() if k in {*ids, "message"}}
            for e in _logged(backend, run_id, run_records)
        ),
        key=lambda e: str(e["message"]),
    )
    # `quiet` opted out of the flow's log_prints: its print is not among the run's logs
    assert logged == [{**ids, "message": "logged m-42"}, {**ids, "message": "printed m-42"}]
    if backend.name == "emulator":  # the ids also ride as Cloud Logging labels
        entry = next(e for e in _logged(backend, run_id, []) if e["message"] == "logged m-42")
        assert entry["logging.googleapis.com/labels"] == {
            "run_id": run_id, "flow": "chatty", "task": "chatty",
        }  # fmt: skip


def test_the_run_context_inside_a_task(backend: Any) -> None:
    out = backend.run(chatty_flow, {"marker": "m-7"})
    assert out.status is RunStatus.SUCCEEDED, out.run.error
    run_id = out.run.run_id
    flow_run = out.value["flow_run"]
    assert datetime.fromisoformat(flow_run.pop("scheduled_start_time")) == out.run.created_at
    assert flow_run == {
        "id": run_id,
        "name": run_id,
        "flow_name": "chatty",
        "parameters": {"marker": "m-7"},
        "trigger": "api",
    }
    assert out.value["task_run"] == {
        "id": f"{run_id}/chatty",
        "name": "chatty",
        "task_key": "chatty",
        "run_count": 1,
        "parameters": {"marker": "m-7"},
    }
