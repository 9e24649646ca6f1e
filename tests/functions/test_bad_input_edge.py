"""Bad input in process: dead-lettered and acknowledged; transient failures are retried.

the function edge and the functions-framework app over in-memory adapters, showing bad
input returns normally (HTTP 200) and a transient failure raises (HTTP 500).
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from examples.sample_flow import sample_flow
from orchestrator import flow, functions, on_pubsub, task
from orchestrator.adapters import (
    PUBSUB_PUBLISHED,
    MemoryBlobStore,
    MemoryBus,
    MemoryStore,
    SystemClock,
)
from orchestrator.contracts import (
    DEAD_LETTER_PAYLOAD_CHARS,
    DEAD_LETTER_REASON_CHARS,
    DeadLetter,
    Run,
    clip,
)
from orchestrator.errors import TransientError
from orchestrator.functions import main
from orchestrator.runtime import Runtime, start_run
from tests.functions.bad_input_events import (
    RUN_REQUESTED,
    TASK_FAILED,
    TASK_REQUESTED,
    TASK_SUCCEEDED,
    TOPICS,
    _ce,
    _json,
    _run_requested,
    _task_failed,
    _task_requested,
    _task_succeeded,
)

# --- in process: the edge over in-memory adapters ---------------------------------------------


class DownStore(MemoryStore):
    """Firestore unavailable: state reads/writes and dead-letter writes raise TransientError."""

    def _down(self) -> TransientError:
        return TransientError("Firestore unavailable (test); retry later")

    def create_run(self, run: Run) -> bool:
        raise self._down()

    def load(self, run_id: str, keys: Any = None) -> Any:
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
    letters = letters or MemoryStore()
    local = Local(
        Runtime(
            flows=flows,
            state=state or flows,
            timers=state or flows,
            letters=letters,
            blobs=MemoryBlobStore(),
            bus=MemoryBus(),
            clock=SystemClock(),
            start=start_run,
        ),
        flows,
        state or flows,
        letters,
    )
    functions.use_runtime(local.rt)
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
        "source": f"//pubsub.googleapis.com/projects/kumoflow-local/topics/{TOPICS.runs}",
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
    source = Path(__file__).resolve().parents[2] / "orchestrator" / "functions" / "main.py"
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="run_starter", source=str(source), signature_type="cloudevent"
    )
    yield app.test_client()
    if not had_main:
        sys.modules.pop("main", None)  # functions-framework loaded functions/main.py as `main`


def _post(
    client: Any, mode: str, data: bytes, attributes: dict[str, str], topic: str = TOPICS.runs
) -> Any:
    body = _message(data, attributes, message_id="4242")
    if mode == "binary-cloudevent":  # Eventarc's delivery
        headers = {
            "ce-id": "4242",
            "ce-type": PUBSUB_PUBLISHED,
            "ce-source": f"//pubsub.googleapis.com/projects/kumoflow-local/topics/{topic}",
            "ce-specversion": "1.0",
            "content-type": "application/json",
        }
        return client.post("/", headers=headers, data=json.dumps(body))
    # The Pub/Sub emulator's raw push, converted by functions-framework.
    return client.post(f"/projects/kumoflow-local/topics/{topic}", json=body)


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


# --- a trigger topic: JSON nested deeper than the decoder's recursion limit ----------------------


@task(name="echo-count")
def echo_count(count: int) -> int:
    return count


@flow(name="deep-params", triggers=[on_pubsub(topic="deep-topic")])
def deep_params(count: int = 0) -> int:
    return echo_count(count)


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("body", [DEEP, b'{"count": ' + DEEP + b"}"], ids=["data", "param"])
@pytest.mark.parametrize("mode", HTTP_MODES)
def test_http_deeply_nested_trigger_message_is_dead_lettered_once_and_answers_200(
    run_starter_app: Any, monkeypatch: pytest.MonkeyPatch, mode: str, body: bytes
) -> None:
    local = _install(monkeypatch)
    local.flows.put_flow(deep_params.spec, deploy=True)
    for _ in range(2):  # a redelivery (same message id) keeps the one record
        response = _post(run_starter_app, mode, body, {}, topic="deep-topic")
        assert response.status_code == 200
    (letter,) = local.letters.list()
    assert letter.source == "run_starter"
    assert letter.topic == "deep-topic"
    assert letter.reason.startswith("BadInputError: ")
    assert "nested too deeply" in letter.reason
    assert local.state.list_runs() == []


# --- a dead letter's size: one rule where the record is built --------------------------------


def test_a_forged_huge_uri_leaves_a_clipped_reason(
    local: Local, caplog: pytest.LogCaptureFixture
) -> None:
    main.run_starter(_ours(RUN_REQUESTED, _run_requested("r-forged"))[0])
    forged = "gs://kumoflow-results/" + "x" * 300_000
    event, ce_id = _ours(TASK_SUCCEEDED, _task_succeeded("r-forged", result_uri=forged))
    main.orchestrator(event)
    (letter,) = local.letters.list()
    assert letter.event_id == ce_id
    full = (
        "BadInputError: task.succeeded for 'create-csv-file' of run 'r-forged' names its result "
        f"at {forged!r}; this task's result can only be at "
        "gs://kumoflow-results/runs/r-forged/create-csv-file.json"
    )
    assert letter.reason == clip(full, DEAD_LETTER_REASON_CHARS)
    assert len(letter.reason) == DEAD_LETTER_REASON_CHARS
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("rejected input")]
    assert logged.getMessage() == f"rejected input: {letter.reason}"


def test_a_huge_reason_is_clipped_in_the_record_itself() -> None:
    letter = DeadLetter(
        id="l", received_at=datetime(2026, 1, 1, tzinfo=UTC), source="s", reason="r" * 90_000
    )
    assert len(letter.reason) == DEAD_LETTER_REASON_CHARS
    assert "[truncated" in letter.reason


def test_a_100kb_payload_is_truncated_by_the_record_not_by_an_adapter() -> None:
    """The record is built truncated (and so inexact): every store keeps the same thing."""
    text = "p" * 100_000
    letter = DeadLetter(
        id="l",
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        source="run_starter",
        reason="BadInputError: too big",
        payload=text,
        exact=True,
    )
    assert letter.payload == clip(text, DEAD_LETTER_PAYLOAD_CHARS)
    assert letter.exact is False
    memory = MemoryStore()
    memory.record(letter)
    assert memory.get("l") == letter
    fits = DeadLetter.model_validate({**letter.model_dump(), "payload": "ok", "exact": True})
    assert (fits.payload, fits.exact) == ("ok", True)


def test_a_100kb_bad_message_on_the_memory_backend_keeps_a_truncated_payload(
    local: Local,
) -> None:
    data = b'{"flow": "nope", "params": {"json_data": "' + b"x" * 100_000 + b'"}}'
    attributes = _ce(RUN_REQUESTED)
    main.run_starter(_published(_message(data, attributes)))
    (letter,) = local.letters.list()
    assert letter.payload == clip(data.decode(), DEAD_LETTER_PAYLOAD_CHARS)
    assert letter.exact is False
