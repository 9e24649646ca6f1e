"""The public callback function (infra/callback.tf), served by functions-framework as in the
cloud: a pause's signed link shows its form and resumes it once; a link with a wrong
signature, past its expiry, for another node, or any other path answers 403 and changes
nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from orchestrator import functions
from orchestrator.adapters import FileBlockStore
from orchestrator.contracts import RunStatus
from orchestrator.io import services
from orchestrator.runtime import Runtime
from orchestrator.waits import ResumeKey, resume_url, waiting_pauses
from tests.waits.test_waits import _pump, _runtime, _start, _status

BASE = "https://kumoflow-callback-123.europe-west1.run.app"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    import functions_framework

    had_main = "main" in sys.modules
    source = Path(__file__).resolve().parents[2] / "orchestrator" / "functions" / "main.py"
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="resume_callback", source=str(source), signature_type="http"
    )
    yield app.test_client()
    if not had_main:
        sys.modules.pop("main", None)


def _link(rt: Runtime, run_id: str, key: str, hours: float = 1) -> str:
    """A signed link's path and query, as the function receives them."""
    with services(rt.blobs, rt.blocks, (rt.clock, rt.results_bucket)):
        url = urlsplit(resume_url(BASE, run_id, key, valid_for=timedelta(hours=hours)))
    return f"{url.path}?{url.query}"


def _paused(tmp_path: Path) -> tuple[Runtime, Any, Any, Any]:
    rt, store, bus, clock = _runtime()
    rt = replace(rt, blocks=FileBlockStore(tmp_path))
    with services(rt.blobs, rt.blocks, (rt.clock, rt.results_bucket)):
        ResumeKey(key="k" * 32).save("kumoflow-resume")
    _start(rt, bus, "approval", {"amount": 4}, "r")
    functions.use_runtime(rt)
    return rt, store, bus, clock


def test_a_signed_link_shows_the_form_and_resumes_once(client: Any, tmp_path: Path) -> None:
    rt, store, bus, _ = _paused(tmp_path)
    link = _link(rt, "r", "pause")
    shown = client.get(link)
    assert shown.status_code == 200
    page = shown.get_data(as_text=True)
    assert 'type="checkbox" name="approved"' in page
    assert 'type="text" name="approver"' in page
    assert shown.headers["Cache-Control"] == "no-store"
    refused = client.post(link, data={"approver": ""})
    assert refused.status_code == 422
    assert "approver: String should have at least 1 character" in refused.get_data(as_text=True)
    assert set(waiting_pauses(rt, "r")) == {"pause"}  # nothing changed
    done = client.post(link, data={"approved": "on", "approver": "ana"})
    assert done.status_code == 200
    assert "Resumed with" in done.get_data(as_text=True)
    again = client.post(link, data={"approved": "on", "approver": "bob"})
    assert again.status_code == 409  # resumed once
    _pump(rt, bus)
    assert _status(store, "r") is RunStatus.SUCCEEDED
    snap = store.load("r")
    assert snap is not None
    decided = rt.blobs.get(snap.run.result_uri or "")
    assert b"ana" in decided


@pytest.mark.parametrize("tamper", ["signature", "expired", "other node", "other run", "path"])
def test_anything_but_a_valid_link_is_refused(client: Any, tmp_path: Path, tamper: str) -> None:
    rt, store, bus, clock = _paused(tmp_path)
    link = _link(rt, "r", "pause")
    if tamper == "signature":
        link = link[:-1] + ("0" if link[-1] != "0" else "1")
    if tamper == "expired":
        clock.sleep(3601)
    if tamper == "other node":
        link = link.replace("/pause?", "/decide?")
    if tamper == "other run":
        link = link.replace("/r/", "/s/")
    if tamper == "path":
        link = "/runs/r" + link[link.index("?") :]
    for response in (client.get(link), client.post(link, data={"approver": "eve"})):
        assert response.status_code == 403, tamper
        assert "Forbidden" in response.get_data(as_text=True)
    _pump(rt, bus)
    assert set(waiting_pauses(rt, "r")) == {"pause"}
    assert _status(store, "r") is RunStatus.RUNNING
