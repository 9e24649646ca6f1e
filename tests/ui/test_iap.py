"""Behind IAP, only a verified assertion of an operator may retry or cancel.

Tokens are real ES256 JWTs signed with a key made here; the dashboard verifies them against
that key's PEM (KUMOFLOW_IAP_CERTS_FILE, the shape of IAP's public_key endpoint), through the
same google-auth path it uses against IAP's keys in the cloud.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import crypt, jwt

from orchestrator.errors import KumoflowError
from orchestrator.testing import MemoryBackend
from orchestrator.ui import create_app
from tests.flows.observed import observed
from tests.ui.conftest import serving

AUDIENCE = "/projects/123456789/locations/asia-northeast1/services/kumoflow-dashboard"
OPERATOR = "ops@example.com"
KID = "iap-test-key"
_encode: Callable[..., bytes] = jwt.encode  # google-auth carries no annotations


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Iap:
    url: str
    run_id: str
    backend: MemoryBackend
    iap_key: bytes  # PEM of the key the dashboard trusts
    stranger: bytes  # PEM of a key nobody trusts

    def token(self, key: bytes | None = None, kid: str = KID, **over: object) -> str:
        """An assertion as IAP makes it; `over` replaces claims."""
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": "https://cloud.google.com/iap",
            "aud": AUDIENCE,
            "email": OPERATOR,
            "sub": "accounts.google.com:1234567890",
            "iat": now,
            "exp": now + 600,
        }
        claims.update(over)
        signer = crypt.ES256Signer.from_string(key or self.iap_key, kid)
        return _encode(signer, claims).decode()

    def status(self) -> tuple[str, int]:
        snap = self.backend.rt.state.load(self.run_id, [])
        assert snap is not None
        return snap.run.status.value, snap.run.attempt


@pytest.fixture
def iap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Iap]:
    trusted = ec.generate_private_key(ec.SECP256R1())
    public = trusted.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    certs = tmp_path / "iap-keys.json"
    certs.write_text(json.dumps({KID: public.decode()}))
    monkeypatch.setenv("KUMOFLOW_IAP_CERTS_FILE", str(certs))
    backend = MemoryBackend()
    params = {"n": 1, "counter": str(tmp_path / "c"), "marker": str(tmp_path / "m")}
    out = backend.run(observed, params)
    assert out.run.status.value == "FAILED"
    (tmp_path / "m").touch()  # a retry would now succeed: only the identity check stops it
    app = create_app(backend.rt, operators=f"{OPERATOR}, lead@example.com", iap_audience=AUDIENCE)
    with serving(app) as url:
        yield Iap(
            url,
            out.run.run_id,
            backend,
            _private_pem(trusted),
            _private_pem(ec.generate_private_key(ec.SECP256R1())),
        )


def _page(iap: Iap, headers: dict[str, str]) -> str:
    request = urllib.request.Request(f"{iap.url}/runs/{iap.run_id}", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as r:
        return str(r.read().decode())


def _post(iap: Iap, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        f"{iap.url}/runs/{iap.run_id}/retry", method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code


def _unsigned(iap: Iap) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": KID}).encode())
    payload = iap.token().split(".")[1]
    return f"{header}.{payload}."


def _no_signature(iap: Iap) -> str:
    head, payload, _ = iap.token().split(".")
    return f"{head}.{payload}."


REFUSED: dict[str, Callable[[Iap], dict[str, str]]] = {
    "no assertion": lambda i: {},
    # The unsigned header IAP also sends: anyone reaching the service around IAP can forge it.
    "plain email header": lambda i: {
        "x-goog-authenticated-user-email": f"accounts.google.com:{OPERATOR}"
    },
    "signed by another key": lambda i: {"x-goog-iap-jwt-assertion": i.token(key=i.stranger)},
    "alg none": lambda i: {"x-goog-iap-jwt-assertion": _unsigned(i)},
    "signature stripped": lambda i: {"x-goog-iap-jwt-assertion": _no_signature(i)},
    "garbage": lambda i: {"x-goog-iap-jwt-assertion": "not.a.jwt"},
    "unknown key id": lambda i: {"x-goog-iap-jwt-assertion": i.token(kid="other")},
    "another service's audience": lambda i: {
        "x-goog-iap-jwt-assertion": i.token(aud=AUDIENCE.replace("dashboard", "other"))
    },
    "another issuer": lambda i: {
        "x-goog-iap-jwt-assertion": i.token(iss="https://accounts.google.com")
    },
    "expired": lambda i: {
        "x-goog-iap-jwt-assertion": i.token(iat=int(time.time()) - 3600, exp=int(time.time()) - 600)
    },
    "no email": lambda i: {"x-goog-iap-jwt-assertion": i.token(email=None)},
    "a valid viewer who is no operator": lambda i: {
        "x-goog-iap-jwt-assertion": i.token(email="viewer@example.com")
    },
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_without_a_verified_operator_the_dashboard_is_read_only(iap: Iap, case: str) -> None:
    headers = REFUSED[case](iap)
    page = _page(iap, headers)
    assert 'class="ro">read-only' in page
    assert 'id="retry"' not in page
    assert _post(iap, headers) == 403
    assert iap.status() == ("FAILED", 1)  # nothing was retried


def test_a_verified_operator_retries_a_failed_run(iap: Iap) -> None:
    headers = {"x-goog-iap-jwt-assertion": iap.token(email="Lead@Example.com")}
    page = _page(iap, headers)
    assert 'class="ro">read-only' not in page
    assert 'id="retry"' in page
    assert _post(iap, headers) == 200  # the 303 to the run page, followed
    status, attempt = iap.status()
    assert attempt == 2
    assert status in ("RUNNING", "SUCCEEDED")


def test_operators_without_an_audience_refuse_to_start() -> None:
    with pytest.raises(KumoflowError, match="KUMOFLOW_IAP_AUDIENCE is not set"):
        create_app(MemoryBackend().rt, operators=OPERATOR)


def test_an_audience_without_operators_lets_nobody_act(
    iap: Iap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUMOFLOW_UI_OPERATORS", raising=False)
    with serving(create_app(iap.backend.rt, iap_audience=AUDIENCE)) as url:
        headers = {"x-goog-iap-jwt-assertion": iap.token()}
        request = urllib.request.Request(f"{url}/runs/{iap.run_id}/retry", method="POST")
        for name, value in headers.items():
            request.add_header(name, value)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 403
        refused.value.close()
    assert iap.status() == ("FAILED", 1)


CROSS_SITE: dict[str, dict[str, str]] = {
    "sec-fetch-site cross-site": {"Sec-Fetch-Site": "cross-site"},
    "sec-fetch-site same-site": {"Sec-Fetch-Site": "same-site"},
    "origin of another site": {"Origin": "https://evil.example"},
    "opaque origin": {"Origin": "null"},
}


@pytest.mark.parametrize("case", list(CROSS_SITE))
def test_a_cross_site_post_with_a_valid_operator_assertion_is_refused(iap: Iap, case: str) -> None:
    """IAP's session makes the browser send an operator's assertion on any site's form POST:
    the assertion alone must not let another site retry or cancel."""
    headers = {"x-goog-iap-jwt-assertion": iap.token(), **CROSS_SITE[case]}
    assert _post(iap, headers) == 403
    assert iap.status() == ("FAILED", 1)


def test_an_operator_post_from_the_dashboard_itself_is_accepted(iap: Iap) -> None:
    host = iap.url.removeprefix("http://")
    headers = {
        "x-goog-iap-jwt-assertion": iap.token(),
        "Origin": f"https://{host}",  # IAP's TLS in front: the scheme differs, the host does not
        "Sec-Fetch-Site": "same-origin",
    }
    assert _post(iap, headers) == 200
    assert iap.status()[1] == 2
