"""The dashboard's POSTs refuse other sites, and it answers only the hosts it is served as
(a DNS-rebound name reaching `kumoflow ui` on 127.0.0.1 gets 400)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.testing import MemoryBackend
from orchestrator.ui import create_app
from tests.flows.observed import observed
from tests.ui.conftest import serving


@dataclass
class Local:
    url: str
    port: int
    run_id: str
    backend: MemoryBackend

    def attempt(self) -> tuple[str, int]:
        snap = self.backend.rt.state.load(self.run_id, [])
        assert snap is not None
        return snap.run.status.value, snap.run.attempt


def _failed(tmp_path: Path) -> tuple[MemoryBackend, str]:
    backend = MemoryBackend()
    params = {"n": 1, "counter": str(tmp_path / "c"), "marker": str(tmp_path / "m")}
    out = backend.run(observed, params)
    assert out.run.status.value == "FAILED"
    (tmp_path / "m").touch()  # a retry would now succeed: only the checks here stop it
    return backend, out.run.run_id


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Local]:
    for name in ("KUMOFLOW_UI_OPERATORS", "KUMOFLOW_IAP_AUDIENCE", "KUMOFLOW_UI_ALLOWED_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    backend, run_id = _failed(tmp_path)
    with serving(create_app(backend.rt)) as url:
        yield Local(url, int(url.rpartition(":")[2]), run_id, backend)


def _send(url: str, method: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        e.close()
        return e.code, body


def _retry(local: Local, headers: dict[str, str]) -> tuple[int, str]:
    return _send(f"{local.url}/runs/{local.run_id}/retry", "POST", headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "http://127.0.0.1:1"},  # another port is another origin
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"},
    ],
    ids=["sec-fetch-site", "foreign-origin", "other-port", "opaque-origin", "both-disagree"],
)
def test_a_cross_site_post_is_refused_with_403(local: Local, headers: dict[str, str]) -> None:
    sent = {k: v.format(port=local.port) for k, v in headers.items()}
    status, body = _retry(local, sent)
    assert status == 403
    assert "cross-site request refused" in body
    assert local.attempt() == ("FAILED", 1)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
        {},  # no browser: curl, a script
    ],
    ids=["same-origin", "no-browser-headers"],
)
def test_a_post_from_the_dashboard_itself_is_accepted(
    local: Local, headers: dict[str, str]
) -> None:
    sent = {k: v.format(port=local.port) for k, v in headers.items()}
    status, _ = _retry(local, sent)
    assert status == 200  # the 303 to the run page, followed
    assert local.attempt()[1] == 2


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "10.0.0.7:{port}"])
def test_a_host_it_is_not_served_as_gets_400(local: Local, host: str) -> None:
    status, body = _send(f"{local.url}/runs", "GET", {"Host": host.format(port=local.port)})
    assert status == 400
    assert "host" in body.lower()
    status, _ = _retry(local, {"Host": host.format(port=local.port)})
    assert status == 400
    assert local.attempt() == ("FAILED", 1)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}"])
def test_local_names_are_answered(local: Local, host: str) -> None:
    status, body = _send(f"{local.url}/runs", "GET", {"Host": host.format(port=local.port)})
    assert status == 200
    assert local.run_id[:8] in body


def test_configured_hosts_replace_the_local_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUMOFLOW_UI_ALLOWED_HOSTS", "dash.example.com, *.a.run.app")
    backend, _ = _failed(tmp_path)
    with serving(create_app(backend.rt)) as url:
        for host, expected in [
            ("dash.example.com", 200),
            ("kumoflow-dashboard-abc123-an.a.run.app", 200),
            ("127.0.0.1", 400),
            ("evil.example", 400),
        ]:
            status, _ = _send(f"{url}/runs", "GET", {"Host": host})
            assert status == expected, host
