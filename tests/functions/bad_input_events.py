"""Bad-input tests, shared part: event builders, the run used by task events, and `Case`.

`tests.functions.bad_input_cases` holds the table of malformed messages built from these;
`tests.test_bad_input_e2e` and `tests.test_bad_input_edge` run them.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

from examples.sample_flow import sample_flow
from orchestrator.contracts import flow_version
from orchestrator.runtime import Topics

TOPICS = Topics()
SOURCE = "//kumoflow.dev/tests/bad-input"
SAMPLE_VERSION = flow_version(sample_flow.spec)
EXISTING_RUN = f"bad-input-existing-{uuid.uuid4().hex[:12]}"  # a real run with no tasks queued
T0 = "2026-01-01T00:00:00Z"

RUN_REQUESTED = "dev.kumoflow.run.requested"
TASK_REQUESTED = "dev.kumoflow.task.requested"
TASK_SUCCEEDED = "dev.kumoflow.task.succeeded"
TASK_FAILED = "dev.kumoflow.task.failed"


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _ce(event_type: str, *, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """Binary-mode CloudEvent attributes with a fresh ce-id; `drop` removes ce-<name>."""
    attributes = {
        "ce-specversion": "1.0",
        "ce-id": f"bad-input-{uuid.uuid4().hex}",
        "ce-type": event_type,
        "ce-source": SOURCE,
        "content-type": "application/json",
        **{f"ce-{k}": v for k, v in extra.items()},
    }
    for name in drop:
        del attributes[f"ce-{name}"]
    return attributes


def _new_run_id() -> str:
    return f"bad-input-{uuid.uuid4().hex[:16]}"


def _no_such(what: str) -> str:
    return f"no-such-{what}-{uuid.uuid4().hex[:12]}"


def _run_requested(run_id: str | None = None, **over: object) -> dict[str, object]:
    data: dict[str, object] = {"flow": "sample-flow", "params": {"json_data": "[]"}}
    if run_id is not None:
        data["run_id"] = run_id
    return {**data, **over}


def _task_requested(run_id: str = EXISTING_RUN, **over: object) -> dict[str, object]:
    return {
        "run_id": run_id,
        "flow_version": SAMPLE_VERSION,
        "key": "create-csv-file",
        "attempt": 1,
        **over,
    }


def _task_succeeded(run_id: str = EXISTING_RUN, **over: object) -> dict[str, object]:
    return {
        "run_id": run_id,
        "key": "create-csv-file",
        "attempt": 1,
        "token": "test-token",
        "result_uri": "gs://kumoflow-results/runs/x/create-csv-file.json",
        "worker": "test",
        "started_at": T0,
        "ended_at": T0,
        **over,
    }


def _task_failed(run_id: str = EXISTING_RUN, **over: object) -> dict[str, object]:
    return {
        "run_id": run_id,
        "key": "create-csv-file",
        "attempt": 1,
        "token": "test-token",
        "error": {"type": "builtins.ValueError", "message": "boom"},
        "retryable": False,
        "worker": "test",
        "started_at": T0,
        "ended_at": T0,
        **over,
    }


@dataclass(frozen=True)
class Case:
    id: str
    topic: str
    attributes: dict[str, str]
    data: bytes
    source: str  # the function expected to reject it
    reason: str  # a substring the dead letter's reason must contain
    decoded: bool = True  # our envelope decodes (False: rejected while decoding it)
    run_id: str | None = None  # run.requested naming a run id: no run may exist afterwards
    flow: str | None = None  # ... and list_runs(flow) must not show it
    bug: str | None = None  # a known product bug: xfail(strict) until fixed

    @property
    def event_id(self) -> str | None:
        """The CloudEvent id the publisher set, if there is a well-formed one to name."""
        if "ce-id" in self.attributes:
            return self.attributes["ce-id"]
        if not self.attributes:  # structured mode: the id is in the JSON envelope
            try:
                envelope = json.loads(self.data)
            except (ValueError, RecursionError):
                return None
            if isinstance(envelope, dict) and isinstance(envelope.get("id"), str):
                return str(envelope["id"])
        return None

    @property
    def event_type(self) -> str | None:
        """The CloudEvent type the publisher set, as the dead letter should record it."""
        if "ce-type" in self.attributes or "ce-id" in self.attributes:
            return self.attributes.get("ce-type")
        try:
            envelope = json.loads(self.data)
        except (ValueError, RecursionError):
            return None
        found = envelope.get("type") if isinstance(envelope, dict) else None
        return found if isinstance(found, str) else None


def _run_case(
    case_id: str,
    attributes: dict[str, str],
    data: dict[str, object],
    reason: str,
    *,
    topic: str = TOPICS.runs,
    source: str = "run_starter",
    decoded: bool = True,
    bug: str | None = None,
) -> Case:
    """A case whose data is (nearly) a run.requested: no run with its run_id may appear."""
    run_id, flow = data.get("run_id"), data.get("flow")
    # A malformed id cannot be looked up (nor can it have created a run).
    checkable = (
        isinstance(run_id, str)
        and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", run_id) is not None
    )
    return Case(
        case_id,
        topic,
        attributes,
        _json(data),
        source,
        reason,
        decoded=decoded,
        run_id=run_id if checkable and isinstance(run_id, str) else None,
        flow=flow if checkable and isinstance(flow, str) else None,
        bug=bug,
    )


def _structured(event_type: str, data: object, *, specversion: bool = True) -> bytes:
    envelope: dict[str, object] = {
        "id": f"bad-input-{uuid.uuid4().hex}",
        "type": event_type,
        "source": SOURCE,
        "data": data,
    }
    if specversion:
        envelope["specversion"] = "1.0"
    return _json(envelope)
