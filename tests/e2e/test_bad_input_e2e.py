"""Bad input end to end on the emulator stack: dead-lettered once, acknowledged, no run started.

Malformed messages (`tests.functions.bad_input_cases`) published to each function's topic are
dead-lettered with a clear reason, acknowledged once (not redelivered) and start no run.
Cases marked `xfail(strict=True)` reproduce product bugs; each reason says what is wrong.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from examples.map_reduce import map_reduce
from examples.sample_flow import sample_flow
from orchestrator.contracts import DeadLetter, Run, clip
from tests.functions.bad_input_cases import CASES, _params
from tests.functions.bad_input_events import (
    EXISTING_RUN,
    SAMPLE_VERSION,
    T0,
    Case,
)

LETTER_TIMEOUT_S = 10.0
# The subscriptions retry after >= 1 s (MIN_BACKOFF_S): a nack would show a second delivery.
REDELIVERY_WAIT_S = 2.5


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

    from orchestrator import emulators
    from orchestrator.adapters import FirestoreStore

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
    assert letter.payload == clip(case.data.decode("utf-8", "replace"), 4096)
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
