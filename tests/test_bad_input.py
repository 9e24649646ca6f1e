"""Bad input is recorded as a dead letter and acknowledged; transient failures are retried.

Two layers:
- end to end on the emulator stack: malformed messages published to each function's topic are
  dead-lettered with a clear reason, acknowledged once (not redelivered) and start no run;
- in process: `functions._edge.handle` and the functions-framework app over in-memory adapters,
  showing bad input returns normally (HTTP 200) and a transient failure raises (HTTP 500).

Cases marked `xfail(strict=True)` reproduce product bugs; each reason says what is wrong.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

import functions._edge as edge
from contracts import DeadLetter, Run, flow_version
from examples.map_reduce import map_reduce
from examples.sample_flow import sample_flow
from functions import main
from orchestrator._codec import PUBSUB_PUBLISHED
from orchestrator._errors import TransientError
from orchestrator._memory import MemoryBlobStore, MemoryBus, MemoryStore, SystemClock
from orchestrator._runtime import Runtime, Topics

TOPICS = Topics()
SOURCE = "//kumoflow.dev/tests/bad-input"
SAMPLE_VERSION = flow_version(sample_flow.spec)
EXISTING_RUN = f"bad-input-existing-{uuid.uuid4().hex[:12]}"  # a real run with no tasks queued
LETTER_TIMEOUT_S = 10.0
# The subscriptions retry after >= 1 s (MIN_BACKOFF_S): a nack would show a second delivery.
REDELIVERY_WAIT_S = 2.5
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
        "result_uri": "gs://kumoflow-results/runs/x/create-csv-file/1.json",
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
            _run_requested(run_id(), priority="high"),
            "run.requested data fails its contract: priority: Extra inputs are not permitted",
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


# --- end to end on the emulator stack ---------------------------------------------------------


@dataclass
class Delivery:
    case: Case
    message_id: str
    letters: list[DeadLetter] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)  # "rejected input" log lines
    run_exists: bool | None = None


def _keys(case: Case, message_id: str) -> set[str]:
    return {message_id} | ({case.event_id} if case.event_id else set())


def _log_lines(path: Path, since: datetime) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines() if path.exists() else []:
        if not raw.startswith("{"):
            continue  # tracebacks, gunicorn's own lines
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and datetime.fromisoformat(entry.get("time", T0)) >= since:
            lines.append(entry)
    return lines


@pytest.fixture(scope="module")
def delivered(stack_env: dict[str, str]) -> Iterator[dict[str, Delivery]]:
    """Publish every case at once, then collect what each function did with it."""
    from google.cloud import firestore, pubsub_v1  # type: ignore[attr-defined]

    import emulators
    from orchestrator._firestore import FirestoreStore

    project = stack_env["GOOGLE_CLOUD_PROJECT"]
    log_dir = emulators.StackConfig.from_env().log_dir
    client = firestore.Client(project=project)
    store = FirestoreStore(client)
    try:
        assert store.put_flow(sample_flow.spec) == SAMPLE_VERSION
        store.put_flow(map_reduce.spec)
        started = datetime.now(UTC) - timedelta(seconds=1)
        store.create_run(
            Run(
                run_id=EXISTING_RUN,
                flow="sample-flow",
                flow_version=SAMPLE_VERSION,
                params={"json_data": "[]", "bucket_name": "demo", "filename": "out.csv"},
                created_at=started,
            )
        )
        publisher = pubsub_v1.PublisherClient()
        try:
            futures = {
                c.id: publisher.publish(
                    f"projects/{project}/topics/{c.topic}", c.data, **c.attributes
                )
                for c in CASES
            }
            out = {c.id: Delivery(c, str(futures[c.id].result(timeout=30))) for c in CASES}
        finally:
            publisher.stop()

        def collect() -> None:
            letters = [lt for lt in store.list(limit=1000) if lt.received_at >= started]
            for d in out.values():
                keys = _keys(d.case, d.message_id)
                d.letters = [lt for lt in letters if lt.event_id in keys]

        deadline = time.monotonic() + LETTER_TIMEOUT_S
        while True:
            collect()
            if all(d.letters for d in out.values() if not d.case.bug):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(REDELIVERY_WAIT_S)  # a nacked or failed delivery would come back by now
        collect()
        logs = {
            name: _log_lines(log_dir / f"{name.replace('_', '-')}.log", started)
            for name in ("run_starter", "task_worker", "orchestrator")
        }
        listed: dict[str, set[str]] = {}
        for d in out.values():
            keys = _keys(d.case, d.message_id)
            d.rejections = [
                e
                for e in logs[d.case.source]
                if str(e.get("message", "")).startswith("rejected input")
                and e.get("event_id") in keys
            ]
            if d.case.run_id is not None:
                flow = d.case.flow
                if flow is not None and flow not in listed:
                    listed[flow] = {r.run_id for r in store.list_runs(flow, limit=1000)}
                d.run_exists = store.load(d.case.run_id) is not None or d.case.run_id in (
                    listed.get(flow, set()) if flow else set()
                )
        yield out
    finally:
        client.close()  # type: ignore[no-untyped-call]


@pytest.mark.emulator
@pytest.mark.parametrize("case", _params(CASES, lambda c: c.bug))
def test_bad_input_is_dead_lettered_and_acknowledged_once(
    delivered: dict[str, Delivery], case: Case
) -> None:
    d = delivered[case.id]
    assert len(d.letters) == 1, (
        f"{case.id}: expected one dead letter for message {d.message_id} / {case.event_id}, "
        f"got {d.letters}"
    )
    letter = d.letters[0]
    assert letter.source == case.source
    assert case.reason in letter.reason, letter.reason
    assert letter.payload == case.data[:4096].decode("utf-8", "replace")
    assert letter.event_type == case.event_type
    # Acknowledged with 2xx: exactly one delivery reached the function and was rejected.
    assert len(d.rejections) == 1, f"{case.id}: rejected {len(d.rejections)} times"
    (line,) = d.rejections
    assert line["function"] == case.source
    assert line["reason"] == letter.reason
    assert line["event_id"] == letter.event_id
    if case.run_id is not None:
        assert d.run_exists is False, f"{case.id}: run {case.run_id} was created"


@pytest.mark.emulator
@pytest.mark.parametrize(
    "case",
    _params([c for c in CASES if c.event_id and not c.bug], lambda c: None),
)
def test_dead_letter_names_the_cloudevent_id(delivered: dict[str, Delivery], case: Case) -> None:
    (letter,) = delivered[case.id].letters
    assert letter.event_id == case.event_id


# --- in process: the edge over in-memory adapters ---------------------------------------------


class DownStore(MemoryStore):
    """Firestore unavailable: state reads/writes and dead-letter writes raise TransientError."""

    def _down(self) -> TransientError:
        return TransientError("Firestore unavailable (test); retry later")

    def create_run(self, run: Run) -> bool:
        raise self._down()

    def load(self, run_id: str) -> Any:
        raise self._down()

    def load_task(self, run_id: str, key: str) -> Any:
        raise self._down()

    def record(self, letter: DeadLetter) -> None:
        raise self._down()


@dataclass
class Local:
    rt: Runtime
    flows: MemoryStore
    state: MemoryStore
    letters: MemoryStore


def _install(
    monkeypatch: pytest.MonkeyPatch,
    *,
    state: MemoryStore | None = None,
    letters: MemoryStore | None = None,
) -> Local:
    flows = MemoryStore()
    flows.put_flow(sample_flow.spec)
    local = Local(
        Runtime(
            flows=flows,
            state=state or flows,
            blobs=MemoryBlobStore(),
            bus=MemoryBus(),
            clock=SystemClock(),
        ),
        flows,
        state or flows,
        letters or MemoryStore(),
    )
    monkeypatch.setattr(edge, "runtime", lambda: (local.rt, local.letters))
    return local


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> Local:
    return _install(monkeypatch)


def _message(data: bytes | str, attributes: object, message_id: str = "1") -> dict[str, object]:
    encoded = base64.b64encode(data).decode() if isinstance(data, bytes) else data
    return {
        "message": {"data": encoded, "attributes": attributes, "messageId": message_id},
        "subscription": "projects/kumoflow-local/subscriptions/kumoflow-test",
    }


def _published(payload: object, *, outer_type: str = PUBSUB_PUBLISHED) -> Any:
    """The messagePublished CloudEvent functions-framework hands the function."""
    attributes = {
        "id": "outer-1",
        "type": outer_type,
        "source": "//pubsub.googleapis.com/projects/kumoflow-local/topics/t",
        "specversion": "1.0",
    }
    return CloudEvent(attributes, payload)


def _ours(event_type: str, data: dict[str, object]) -> tuple[Any, str]:
    attributes = _ce(event_type)
    return _published(_message(_json(data), attributes)), attributes["ce-id"]


HANDLERS: dict[str, Callable[[Any], None]] = {
    "run_starter": main.run_starter,
    "task_worker": main.task_worker,
    "orchestrator": main.orchestrator,
}


@dataclass(frozen=True)
class LocalCase:
    id: str
    function: str
    event: Any  # the messagePublished CloudEvent
    reason: str
    event_id: str  # what the dead letter must name
    bug: str | None = None


def _local_cases() -> list[LocalCase]:
    cases = [
        LocalCase(
            "outer-type-not-messagePublished",
            "task_worker",
            _published(_message(b"{}", {}), outer_type="google.cloud.storage.object.v1.finalized"),
            "expected a google.cloud.pubsub.topic.v1.messagePublished CloudEvent",
            "outer-1",
        ),
        LocalCase(
            "outer-data-not-json",
            "run_starter",
            _published(b"definitely not json"),
            "messagePublished data is not JSON",
            "outer-1",
        ),
        LocalCase(
            "outer-without-message",
            "task_worker",
            _published({"subscription": "s"}),
            "messagePublished data has no `message` object",
            "outer-1",
        ),
        LocalCase(
            "attributes-not-an-object",
            "task_worker",
            _published(_message(b"{}", ["ce-id"])),
            "message attributes must be an object of strings",
            "outer-1",
        ),
        LocalCase(
            "message-data-not-base64",
            "orchestrator",
            _published(_message("not base64!", {})),
            "message data is not valid base64",
            "outer-1",
        ),
        LocalCase(
            "message-data-not-a-string",
            "orchestrator",
            _published({"message": {"data": 12345, "attributes": {}, "messageId": "1"}}),
            "message data",
            "outer-1",
        ),
        LocalCase(
            "message-data-not-json",
            "orchestrator",
            _published(_message(b"not json", {})),
            "not a JSON CloudEvent",
            "outer-1",
        ),
    ]
    decoded: list[tuple[str, str, str, dict[str, object], str]] = [
        (
            "unregistered-flow",
            "run_starter",
            RUN_REQUESTED,
            _run_requested(flow="nope"),
            "NotFoundError: flow 'nope' is not registered",
        ),
        (
            "unknown-param",
            "run_starter",
            RUN_REQUESTED,
            _run_requested(params={"json_data": "[]", "colour": "red"}),
            "ParameterError: flow 'sample-flow' has no parameter 'colour'",
        ),
        (
            "task-for-unknown-run",
            "task_worker",
            TASK_REQUESTED,
            _task_requested("nope"),
            "NotFoundError: task.requested names run 'nope', which does not exist",
        ),
        (
            "succeeded-for-unknown-run",
            "orchestrator",
            TASK_SUCCEEDED,
            _task_succeeded("nope"),
            "NotFoundError: no run 'nope'",
        ),
        (
            "wrong-function",
            "run_starter",
            TASK_FAILED,
            _task_failed(),
            "run_starter takes dev.kumoflow.run.requested, not dev.kumoflow.task.failed",
        ),
    ]
    for case_id, function, event_type, data, reason in decoded:
        event, ce_id = _ours(event_type, data)
        cases.append(LocalCase(case_id, function, event, reason, ce_id))
    event, ce_id = _ours(RUN_REQUESTED, {"flow": 1})
    cases.append(
        LocalCase(
            "contract-failure",
            "run_starter",
            event,
            "run.requested data fails its contract: flow: Input should be a valid string",
            ce_id,
        )
    )
    return cases


LOCAL_CASES = _local_cases()


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else []
        )
        for c in LOCAL_CASES
    ],
)
def test_handle_records_bad_input_and_returns(local: Local, case: LocalCase) -> None:
    HANDLERS[case.function](case.event)  # returns: 2xx, no retry
    (letter,) = local.letters.list()
    assert letter.source == case.function
    assert case.reason in letter.reason, letter.reason
    assert letter.event_id == case.event_id
    assert local.state.list_runs() == []


def test_redelivered_bad_input_gets_the_same_dead_letter_id(local: Local) -> None:
    event, _ = _ours(RUN_REQUESTED, _run_requested(flow="nope"))
    main.run_starter(event)
    main.run_starter(event)
    assert len({letter.id for letter in local.letters.list()}) == 1


def test_redelivered_bad_input_leaves_one_dead_letter(local: Local) -> None:
    event, _ = _ours(RUN_REQUESTED, _run_requested(flow="nope"))
    main.run_starter(event)
    main.run_starter(event)
    assert len(local.letters.list()) == 1


def _valid(function: str) -> Any:
    """A well-formed event for `function` whose handling has to touch the state store."""
    if function == "run_starter":
        return _ours(RUN_REQUESTED, _run_requested("r-transient"))[0]
    if function == "task_worker":
        return _ours(TASK_REQUESTED, _task_requested("r-transient"))[0]
    return _ours(TASK_SUCCEEDED, _task_succeeded("r-transient"))[0]


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_transient_failure_raises_so_pubsub_retries(
    monkeypatch: pytest.MonkeyPatch, function: str
) -> None:
    local = _install(monkeypatch, state=DownStore())
    with pytest.raises(TransientError, match="Firestore unavailable"):
        HANDLERS[function](_valid(function))
    assert local.letters.list() == []  # not dead-lettered: the redelivery may well succeed


def test_dead_letter_store_down_raises_so_the_bad_input_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install(monkeypatch, letters=DownStore())
    event, _ = _ours(RUN_REQUESTED, _run_requested(flow="nope"))
    with pytest.raises(TransientError):
        main.run_starter(event)


# --- in process: the functions-framework app, over HTTP -----------------------------------------


@pytest.fixture(scope="module")
def run_starter_app() -> Iterator[Any]:
    import functions_framework

    had_main = "main" in sys.modules
    source = Path(__file__).resolve().parents[1] / "functions" / "main.py"
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="run_starter", source=str(source), signature_type="cloudevent"
    )
    yield app.test_client()
    if not had_main:
        sys.modules.pop("main", None)  # functions-framework loaded functions/main.py as `main`


def _post(client: Any, mode: str, data: bytes, attributes: dict[str, str]) -> Any:
    body = _message(data, attributes, message_id="4242")
    if mode == "binary-cloudevent":  # Eventarc's delivery
        headers = {
            "ce-id": "4242",
            "ce-type": PUBSUB_PUBLISHED,
            "ce-source": "//pubsub.googleapis.com/projects/kumoflow-local/topics/t",
            "ce-specversion": "1.0",
            "content-type": "application/json",
        }
        return client.post("/", headers=headers, data=json.dumps(body))
    # The Pub/Sub emulator's raw push, converted by functions-framework.
    return client.post(f"/projects/kumoflow-local/topics/{TOPICS.runs}", json=body)


HTTP_MODES = ["binary-cloudevent", "pubsub-push"]


@pytest.mark.parametrize("mode", HTTP_MODES)
def test_http_bad_input_answers_200(
    run_starter_app: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    local = _install(monkeypatch)
    attributes = _ce(RUN_REQUESTED)
    response = _post(run_starter_app, mode, _json(_run_requested(flow="nope")), attributes)
    assert response.status_code == 200
    (letter,) = local.letters.list()
    assert letter.source == "run_starter"
    assert "flow 'nope' is not registered" in letter.reason
    assert letter.event_id == attributes["ce-id"]


@pytest.mark.parametrize("mode", HTTP_MODES)
def test_http_transient_failure_answers_500(
    run_starter_app: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    local = _install(monkeypatch, state=DownStore())
    response = _post(run_starter_app, mode, _json(_run_requested("r-http")), _ce(RUN_REQUESTED))
    assert response.status_code == 500
    assert local.letters.list() == []
