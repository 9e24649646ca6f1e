"""A pause's form on the dashboard (operators) and behind a signed link: generated from the
model, bad input shown with the model's errors and nothing changed, good input resumes once;
a link with a wrong signature or past its expiry opens nothing."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.adapters import FileBlockStore
from orchestrator.contracts import RunStatus
from orchestrator.io import services
from orchestrator.ui import create_app
from orchestrator.waits import ResumeKey, resume_url, waiting_pauses
from tests.ui.conftest import serving
from tests.waits.test_waits import _pump, _runtime, _start, _status


def _send(url: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    headers = {"Sec-Fetch-Site": "same-origin"} if form is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers)) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_dashboard_form_refuses_bad_input_and_resumes_with_good(tmp_path: Path) -> None:
    rt, store, bus, _ = _runtime()
    rt = replace(rt, blocks=FileBlockStore(tmp_path))
    _start(rt, bus, "approval", {"amount": 3}, "r")
    with serving(create_app(rt)) as url:
        status, page = _send(f"{url}/runs/r")
        assert status == 200
        assert "input (Approval)" in page
        assert 'href="/runs/r/input/pause"' in page
        status, form = _send(f"{url}/runs/r/input/pause")
        assert status == 200
        assert re.search(r'type="checkbox" name="approved"', form)
        assert re.search(r'type="text" name="approver"', form)
        status, refused = _send(f"{url}/runs/r/input/pause", {"approver": ""})
        assert status == 422
        assert "approver: String should have at least 1 character" in refused
        assert set(waiting_pauses(rt, "r")) == {"pause"}  # nothing changed
        status, done = _send(f"{url}/runs/r/input/pause", {"approved": "on", "approver": "ana"})
        assert status == 200
        assert "Resumed with" in done
        status, _ = _send(f"{url}/runs/r/input/pause", {"approved": "on", "approver": "bob"})
        assert status == 409  # resumed once
    _pump(rt, bus)
    assert _status(store, "r") is RunStatus.SUCCEEDED


def test_the_dashboard_form_is_for_operators_only(tmp_path: Path) -> None:
    rt, _, bus, _ = _runtime()
    _start(rt, bus, "approval", {}, "r")
    with serving(create_app(rt, read_only=True)) as url:
        assert _send(f"{url}/runs/r/input/pause")[0] == 403
        assert _send(f"{url}/runs/r/input/pause", {"approved": "on", "approver": "x"})[0] == 403
    assert set(waiting_pauses(rt, "r")) == {"pause"}


@pytest.mark.parametrize("tamper", ["none", "signature", "expired"])
def test_a_signed_link_resumes_until_it_expires(tmp_path: Path, tamper: str) -> None:
    rt, store, bus, clock = _runtime()
    rt = replace(rt, blocks=FileBlockStore(tmp_path))
    _start(rt, bus, "approval", {"amount": 4}, "r")
    with services(rt.blobs, rt.blocks, (rt.clock, rt.results_bucket)):
        ResumeKey(key="k" * 32).save("kumoflow-resume")
        with serving(create_app(rt, read_only=True)) as url:  # no operator: the link is enough
            link = resume_url(url, "r", "pause", valid_for=timedelta(hours=1))
            if tamper == "signature":
                link = link[:-1] + ("0" if link[-1] != "0" else "1")
            if tamper == "expired":
                clock.sleep(3601)
            status, _ = _send(link)
            assert status == (200 if tamper == "none" else 403)
            status, _ = _send(link, {"approved": "on", "approver": "eve"})
    _pump(rt, bus)
    ended = _status(store, "r") is RunStatus.SUCCEEDED
    assert ended is (tamper == "none")
