"""Pub/Sub push OIDC verification at the function edge, over HTTP through functions-framework.

Tokens are real RS256 JWTs signed with a key made here (`tests.functions.push_tokens`), verified
against a certificate for it, as Google's certs endpoint serves them; nothing is patched. A refused
request must leave the store exactly as it was: no run, no dead letter, nothing published.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from examples.sample_flow import sample_flow
from orchestrator import functions
from orchestrator.adapters import MemoryBus, MemoryStore
from orchestrator.functions import main
from orchestrator.runtime import LOGGER, memory_runtime
from tests.functions.bad_input_events import RUN_REQUESTED, TOPICS, _ce, _json, _run_requested
from tests.functions.push_tokens import (
    ACCOUNT,
    AUDIENCE,
    FORGERS,
    KID,
    Keys,
    certificate,
    make_keys,
    new_key,
    pem,
    token,
)

TARGETS = ("run_starter", "task_worker", "orchestrator", "sweeper")


@pytest.fixture(scope="module")
def keys() -> Keys:
    return make_keys()


@dataclass
class Served:
    store: MemoryStore
    bus: MemoryBus
    fetches: list[int]

    def snapshot(self) -> tuple[object, ...]:
        """Everything a handler could change: runs, dead letters, timers due, publishes."""
        far = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
        return (
            [r.model_dump() for r in self.store.list_runs(limit=1000)],
            [d.model_dump() for d in self.store.list(limit=1000)],
            [e.model_dump() for e in self.store.due(far, limit=1000)],
            [(t, e.model_dump()) for t, e in self.bus.published],
        )


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, keys: Keys) -> Served:
    """Auth on and configured, certs from `keys`, the functions on a fresh in-memory runtime."""
    monkeypatch.setenv("KUMOFLOW_PUSH_AUTH", "oidc")
    monkeypatch.setenv("KUMOFLOW_PUSH_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("KUMOFLOW_PUSH_SERVICE_ACCOUNT", ACCOUNT)
    fetches: list[int] = []

    def certs() -> Mapping[str, str]:
        fetches.append(1)
        return keys.certs

    functions.use_push_certs(certs)
    store, bus = MemoryStore(), MemoryBus()
    store.put_flow(sample_flow.spec)
    bus.record = True
    functions.use_runtime(memory_runtime(store=store, bus=bus))
    return Served(store, bus, fetches)


@pytest.fixture(scope="module")
def apps() -> Iterator[dict[str, Any]]:
    import functions_framework

    had_main = "main" in sys.modules
    source = Path(__file__).resolve().parents[2] / "orchestrator" / "functions" / "main.py"
    clients = {
        target: functions_framework.create_app(  # type: ignore[no-untyped-call]
            target=target, source=str(source), signature_type="cloudevent"
        ).test_client()
        for target in TARGETS
    }
    yield clients
    if not had_main:
        sys.modules.pop("main", None)  # functions-framework loaded functions/main.py as `main`


@pytest.fixture
def refusals(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[logging.LogRecord]]]:
    """The `push refused` records (the kumoflow logger does not propagate once JSON-configured)."""
    LOGGER.addHandler(caplog.handler)
    yield lambda: [r for r in caplog.records if r.getMessage().startswith("push refused")]
    LOGGER.removeHandler(caplog.handler)


def _push(client: Any, body_data: bytes, token: str | None, *, header: str | None = None) -> Any:
    """The Pub/Sub push body (what the emulator and a push subscription send) with its token."""
    body = {
        "message": {
            "data": base64.b64encode(body_data).decode(),
            "attributes": _ce(RUN_REQUESTED),
            "messageId": uuid.uuid4().hex,
        },
        "subscription": "projects/kumoflow-test/subscriptions/kumoflow-runs",
    }
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(f"/projects/kumoflow-test/topics/{TOPICS.runs}", json=body, headers=headers)


def _start(run_id: str) -> bytes:
    return _json(_run_requested(run_id))


# --- accepted -----------------------------------------------------------------------------------


@pytest.mark.parametrize("issuer", ["https://accounts.google.com", "accounts.google.com"])
def test_valid_token_runs_the_handler(
    apps: dict[str, Any], served: Served, keys: Keys, issuer: str
) -> None:
    response = _push(apps["run_starter"], _start("r-auth-ok"), token(keys.google, iss=issuer))
    assert response.status_code == 200
    (run,) = served.store.list_runs()
    assert run.run_id == "r-auth-ok"


def test_valid_token_bad_input_is_dead_lettered(
    apps: dict[str, Any], served: Served, keys: Keys
) -> None:
    response = _push(apps["run_starter"], b"not json", token(keys.google))
    assert response.status_code == 200
    (letter,) = served.store.list()
    assert letter.source == "run_starter"
    assert served.store.list_runs() == []


def test_binary_cloudevent_delivery_is_verified_too(
    apps: dict[str, Any], served: Served, keys: Keys
) -> None:
    """Eventarc's binary-mode delivery goes through the same check."""
    body = {"message": {"data": "", "attributes": {}, "messageId": "1"}, "subscription": "s"}
    headers = {
        "ce-id": "4242",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/kumoflow-test/topics/t",
        "ce-specversion": "1.0",
        "content-type": "application/json",
    }
    before = served.snapshot()
    client = apps["run_starter"]
    assert client.post("/", headers=headers, data=json.dumps(body)).status_code == 401
    assert served.snapshot() == before
    authorized = {**headers, "Authorization": f"Bearer {token(keys.google)}"}
    assert client.post("/", headers=authorized, data=json.dumps(body)).status_code == 200
    assert len(served.store.list()) == 1  # the empty message was dead-lettered: the handler ran


def test_certs_are_fetched_once_per_instance(
    apps: dict[str, Any], served: Served, keys: Keys
) -> None:
    for i in range(3):
        response = _push(apps["run_starter"], _start(f"r-cache-{i}"), token(keys.google))
        assert response.status_code == 200
    assert len(served.store.list_runs()) == 3
    assert served.fetches == [1]


def test_auth_off_accepts_a_push_without_token(
    apps: dict[str, Any], served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUMOFLOW_PUSH_AUTH", "off")
    response = _push(apps["run_starter"], _start("r-auth-off"), None)
    assert response.status_code == 200
    assert [r.run_id for r in served.store.list_runs()] == ["r-auth-off"]
    assert served.fetches == []


def test_direct_call_without_http_request_is_trusted(served: Served) -> None:
    """In-process callers (tests, embedding) have no request to verify; auth stays on."""
    from cloudevents.http import CloudEvent

    event = CloudEvent(
        {
            "id": "outer-1",
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "//pubsub.googleapis.com/projects/kumoflow-test/topics/t",
        },
        {"message": {"data": "", "attributes": {}, "messageId": "1"}},
    )
    main.run_starter(event)
    assert len(served.store.list()) == 1


# --- refused ------------------------------------------------------------------------------------


def _refused(
    client: Any,
    served: Served,
    refusals: Callable[[], list[logging.LogRecord]],
    status: int,
    token: str | None,
    *,
    header: str | None = None,
) -> logging.LogRecord:
    before = served.snapshot()
    response = _push(client, _start(f"r-refused-{uuid.uuid4().hex[:8]}"), token, header=header)
    assert response.status_code == status
    assert served.snapshot() == before
    (record,) = refusals()
    return record


@pytest.mark.parametrize("target", TARGETS)
def test_missing_token_is_401_and_changes_nothing(
    apps: dict[str, Any],
    served: Served,
    refusals: Callable[[], list[logging.LogRecord]],
    target: str,
) -> None:
    record = _refused(apps[target], served, refusals, 401, None)
    assert record.levelno == logging.WARNING
    assert record.__dict__["function"] == target
    assert record.__dict__["reason"] == "no bearer token in the Authorization header"
    assert served.fetches == []  # refused before any key was needed


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   "])
def test_no_bearer_token_is_401(
    apps: dict[str, Any],
    served: Served,
    refusals: Callable[[], list[logging.LogRecord]],
    header: str,
) -> None:
    _refused(apps["run_starter"], served, refusals, 401, None, header=header)


@pytest.mark.parametrize("case", list(FORGERS))
def test_bad_token_is_403_and_changes_nothing(
    apps: dict[str, Any],
    served: Served,
    refusals: Callable[[], list[logging.LogRecord]],
    keys: Keys,
    case: str,
) -> None:
    record = _refused(apps["run_starter"], served, refusals, 403, FORGERS[case](keys))
    assert record.levelno == logging.WARNING
    assert record.__dict__["function"] == "run_starter"


def test_403_body_does_not_explain_why(apps: dict[str, Any], served: Served, keys: Keys) -> None:
    forged = token(keys.google, email="attacker@evil.iam.gserviceaccount.com")
    response = _push(apps["run_starter"], _start("r-quiet"), forged)
    assert response.status_code == 403
    assert b"attacker" not in response.data
    assert ACCOUNT.encode() not in response.data


def test_auth_is_on_by_default(
    apps: dict[str, Any], served: Served, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUMOFLOW_PUSH_AUTH")
    before = served.snapshot()
    assert _push(apps["run_starter"], _start("r-default-on"), None).status_code == 401
    assert served.snapshot() == before
    assert _push(apps["run_starter"], _start("r-default-on"), token(keys.google)).status_code == 200
    assert [r.run_id for r in served.store.list_runs()] == ["r-default-on"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KUMOFLOW_PUSH_AUDIENCE", None),
        ("KUMOFLOW_PUSH_SERVICE_ACCOUNT", None),
        ("KUMOFLOW_PUSH_AUDIENCE", "  "),
    ],
)
def test_auth_on_but_not_configured_refuses_everything(
    apps: dict[str, Any],
    served: Served,
    refusals: Callable[[], list[logging.LogRecord]],
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str | None,
) -> None:
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    # Even a perfectly valid token is refused: there is nothing to check it against.
    record = _refused(apps["run_starter"], served, refusals, 500, token(keys.google))
    assert record.levelno == logging.ERROR
    assert (
        record.__dict__["reason"] == f"push auth is on but {name} is not set; refusing every push"
    )
    assert served.fetches == []


@pytest.mark.parametrize("mode", ["false", "none", "0"])
def test_unknown_auth_mode_fails_closed(
    apps: dict[str, Any],
    served: Served,
    refusals: Callable[[], list[logging.LogRecord]],
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    monkeypatch.setenv("KUMOFLOW_PUSH_AUTH", mode)
    record = _refused(apps["run_starter"], served, refusals, 500, None)
    assert "KUMOFLOW_PUSH_AUTH" in record.__dict__["reason"]


def test_certs_unavailable_is_retryable_500_not_403(
    apps: dict[str, Any], served: Served, keys: Keys
) -> None:
    """A Google outage must not turn good pushes into 'forbidden': 500, Pub/Sub retries."""
    from orchestrator.errors import TransientError

    def down() -> Mapping[str, str]:
        raise TransientError("certs endpoint unavailable (test)")

    functions.use_push_certs(down)
    before = served.snapshot()
    response = _push(apps["run_starter"], _start("r-certs-down"), token(keys.google))
    assert response.status_code == 500
    assert served.snapshot() == before


def test_a_failed_certs_fetch_is_retried_at_most_once_a_minute(
    apps: dict[str, Any], served: Served, keys: Keys
) -> None:
    """An outage answers 500 (Pub/Sub redelivers) without a fetch per push; then it recovers."""
    from orchestrator.errors import TransientError

    now = [1000.0]
    up = [False]
    fetched: list[float] = []

    def certs() -> Mapping[str, str]:
        fetched.append(now[0])
        if not up[0]:
            raise TransientError("certs endpoint unavailable (test)")
        return keys.certs

    functions.use_push_certs(certs, clock=lambda: now[0])
    client = apps["run_starter"]
    assert _push(client, _start("r-out-1"), token(keys.google)).status_code == 500
    up[0] = True
    now[0] += 30
    assert _push(client, _start("r-out-2"), token(keys.google)).status_code == 500
    assert fetched == [1000.0]  # no second fetch within the minute
    now[0] += 31
    assert _push(client, _start("r-out-3"), token(keys.google)).status_code == 200
    assert fetched == [1000.0, 1061.0]
    assert [r.run_id for r in served.store.list_runs()] == ["r-out-3"]


def test_certs_refresh_for_a_new_key_at_most_once_a_minute_and_hourly(
    apps: dict[str, Any], served: Served, keys: Keys
) -> None:
    """Google rotates keys: an unknown key id refetches (rate-limited), and certs expire hourly."""
    now = [1000.0]
    rotated = new_key()
    published: dict[str, str] = dict(keys.certs)
    fetched: list[dict[str, str]] = []

    def certs() -> Mapping[str, str]:
        fetched.append(dict(published))
        return published

    functions.use_push_certs(certs, clock=lambda: now[0])
    client = apps["run_starter"]
    assert _push(client, _start("r-rot-1"), token(keys.google)).status_code == 200
    assert len(fetched) == 1
    published["rotated"] = certificate(rotated)  # Google publishes the next key
    new_token = token(pem(rotated), kid="rotated")
    now[0] += 30  # too soon to refetch for an unknown id: refused (Pub/Sub redelivers)
    assert _push(client, _start("r-rot-2"), new_token).status_code == 403
    assert len(fetched) == 1
    now[0] += 31
    assert _push(client, _start("r-rot-3"), new_token).status_code == 200
    assert len(fetched) == 2
    del published[KID]  # the old key is retired; the cache keeps it until it is an hour old
    assert _push(client, _start("r-rot-4"), token(keys.google)).status_code == 200
    now[0] += 3600
    assert _push(client, _start("r-rot-5"), token(keys.google)).status_code == 403
    assert len(fetched) == 3
    assert sorted(r.run_id for r in served.store.list_runs()) == ["r-rot-1", "r-rot-3", "r-rot-4"]
