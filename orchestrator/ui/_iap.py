"""Who is acting behind IAP: the email of the signed `x-goog-iap-jwt-assertion`, verified.

IAP (Cloud Run's direct integration, infra/dashboard.tf) signs every request it lets through
with an ES256 JWT: issuer https://cloud.google.com/iap, audience
/projects/NUMBER/locations/REGION/services/NAME. The plain x-goog-authenticated-user-email
header proves nothing (whoever reaches the service some other way can send it), so only the
signed token's email may act; anything short of a valid token is read-only.

- `KUMOFLOW_IAP_AUDIENCE`: the audience the token must carry (infra/dashboard.tf sets it).
- `KUMOFLOW_IAP_CERTS_FILE`: verify against the keys in this JSON file (key id -> PEM) instead
  of fetching IAP's, as functions/_auth.py does for pushes: tests sign with their own key.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.auth import jwt
from google.auth.transport.requests import Request
from google.oauth2 import id_token

ASSERTION = "x-goog-iap-jwt-assertion"
ISSUER = "https://cloud.google.com/iap"
CERTS_URL = "https://www.gstatic.com/iap/verify/public_key"  # key id -> PEM public key
AUDIENCE_ENV = "KUMOFLOW_IAP_AUDIENCE"
CERTS_FILE_ENV = "KUMOFLOW_IAP_CERTS_FILE"
CLOCK_SKEW_S = 30  # what IAP's documentation allows on iat and exp

LOG = logging.getLogger("kumoflow.ui")
# google-auth carries no annotations; typed names keep mypy --strict meaningful here.
_decode_header: Callable[[str], Any] = jwt.decode_header
_verify_token: Callable[..., Any] = id_token.verify_token


@dataclass(frozen=True)
class _Response:
    """What google-auth's transport returns, for the keys this module already holds."""

    status: int
    data: bytes
    headers: dict[str, str]


class IapVerifier:
    """Verifies IAP assertions for one audience; IAP's keys are fetched once an hour, or sooner
    (at most once a minute, so forged key ids cannot hammer the fetch) for an unknown key id."""

    def __init__(
        self,
        audience: str,
        *,
        certs_file: str | None = None,
        max_age: float = 3600.0,
        min_refresh: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audience = audience
        self._certs_file = certs_file
        self._max_age, self._min_refresh, self._clock = max_age, min_refresh, clock
        self._lock = threading.Lock()
        self._body = b"{}"
        self._kids: set[str] = set()
        self._fetched_at: float | None = None
        self._tried_at: float | None = None  # failed fetches are rate-limited as well

    @classmethod
    def from_env(cls, audience: str) -> IapVerifier:
        return cls(audience, certs_file=os.environ.get(CERTS_FILE_ENV) or None)

    def email(self, assertion: str | None) -> str | None:
        """The verified email (lowercase), or None: no assertion, a forged or unsigned one, an
        expired one, another service's (audience), another issuer's, or IAP's keys unreachable."""
        if not assertion:
            return None
        try:
            header = _decode_header(assertion)
            if not isinstance(header, dict) or header.get("alg") != "ES256":
                raise ValueError("not an ES256 JWT (IAP signs with ES256 only)")
            kid = header.get("kid")
            self._refresh(kid if isinstance(kid, str) else None)
            claims = _verify_token(
                assertion,
                self._transport,
                audience=self.audience,
                certs_url=CERTS_URL,
                clock_skew_in_seconds=CLOCK_SKEW_S,
            )
            if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
                raise ValueError(f"issuer {claims.get('iss')!r} is not IAP")
            email = claims.get("email")
            if not isinstance(email, str) or not email:
                raise ValueError("no email claim")
        except Exception as e:  # every failure means the same: not proven, read-only
            LOG.warning("IAP assertion not accepted: %s", e)
            return None
        return email.lower()

    def _transport(self, url: str, method: str = "GET", **_: Any) -> _Response:
        """google-auth's `request` for verify_token: the keys held, never a fetch per request."""
        with self._lock:
            return _Response(200, self._body, {"content-type": "application/json"})

    def _refresh(self, kid: str | None) -> None:
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            unknown = kid is not None and kid not in self._kids
            due = age is None or age >= self._max_age or (unknown and age >= self._min_refresh)
            if due and (self._tried_at is None or now - self._tried_at >= self._min_refresh):
                self._tried_at = now
                body = self._fetch()
                found = json.loads(body)
                if not isinstance(found, dict):
                    raise ValueError("IAP's keys are not a JSON object")
                self._body, self._kids, self._fetched_at = body, set(found), now

    def _fetch(self) -> bytes:
        if self._certs_file:
            with open(self._certs_file, "rb") as f:
                return f.read()
        response = Request()(CERTS_URL, method="GET", timeout=10)
        if response.status != 200:
            raise ValueError(f"IAP's keys answered HTTP {response.status}")
        return bytes(response.data)
