"""`dlq redrive`: a dead letter's input published again where it arrived, once fixed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.contracts import DeadLetter
from orchestrator.errors import KumoflowError
from orchestrator.local import redrive
from orchestrator.testing import memory_runtime


def _letter(**kw: object) -> DeadLetter:
    fields: dict[str, object] = {
        "id": "dl1", "received_at": datetime(2026, 1, 1, tzinfo=UTC), "source": "run_starter",
        "reason": "NotFoundError: no flow deployed on topic 'ingest'", "payload": '{"n": 1}',
        "topic": "ingest", "attributes": {"mode": "x"}, "exact": True,
    }  # fmt: skip
    return DeadLetter.model_validate({**fields, **kw})


def test_redrive_publishes_the_recorded_input_and_marks_the_letter() -> None:
    rt = memory_runtime()
    rt.letters.record(_letter())
    sent: list[tuple[str, bytes, dict[str, str]]] = []
    letter, message_id = redrive(rt, "dl1", lambda t, d, a: sent.append((t, d, a)) or "m-1")
    assert sent == [("ingest", b'{"n": 1}', {"mode": "x"})]
    assert message_id == "m-1"
    assert letter.redriven_at is not None
    assert rt.letters.get("dl1") == letter


def test_a_truncated_or_masked_input_needs_the_fixed_input() -> None:
    rt = memory_runtime()
    rt.letters.record(_letter(exact=False))
    sent: list[bytes] = []
    with pytest.raises(KumoflowError, match="--data"):
        redrive(rt, "dl1", lambda t, d, a: sent.append(d) or "m")
    assert sent == []
    redrive(rt, "dl1", lambda t, d, a: sent.append(d) or "m", data=b'{"n": 2}')
    assert sent == [b'{"n": 2}']
    rt.letters.record(_letter(id="dl2", topic=None))
    with pytest.raises(KumoflowError, match="nowhere to publish"):
        redrive(rt, "dl2", lambda t, d, a: "m")
