"""`kumoflow events send`: an event kept once per id where waiting runs read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.local import history_runtime


def test_an_event_sent_twice_is_kept_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUMOFLOW_HOME", str(tmp_path))
    args = ["events", "send", "paid", "--data", '{"invoice": 42}', "--id", "inv-42"]
    first = CliRunner().invoke(main, [*args, "--in-process", "--json"])
    again = CliRunner().invoke(main, [*args, "--in-process", "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {"event": "paid", "id": "inv-42", "duplicate": False}
    assert json.loads(again.output)["duplicate"] is True
    rt = history_runtime()
    (kept,) = rt.blobs.list_uris(f"gs://{rt.results_bucket}/kumoflow/events/event/paid/")
    assert json.loads(rt.blobs.get(kept))["data"] == {"invoice": 42}
    bad = CliRunner().invoke(main, ["events", "send", "paid", "--data", "{", "--in-process"])
    assert bad.exit_code == 2
    assert "--data is not JSON" in bad.output
