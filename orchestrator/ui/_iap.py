"""Who is acting behind IAP: the email of the signed `x-goog-iap-jwt-assertion`, verified.

IAP (Cloud Run's direct integration, infra/dashboard.tf) signs every request it lets through
with an ES256 JWT: issuer https://cloud.google.com/iap, audience
/projects/NUMBER/locations/REGION/services/NAME. The plain x-goog-authenticated-user-email
header proves nothing (whoever reaches the service some other way can send it), so only the
signed token's email may act; anything short of a valid token is read-only.

- `KUMOFLOW_IAP_AUDIENCE`: the audience the token must carry (infra/dashboard.tf sets it).
- `KUMOFLOW_IAP_CERTS_FILE`: verify against the keys in this JSON file (key id -> PEM) instead
  of fetching IAP's, as KUMOFLOW_PUSH_CERTS_FILE does for pushes: tests sign with their own key.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from google.auth import jwt

from orchestrator.adapters import CertCache, certs_file, fetch_certs

ASSERTION = "x-goog-iap-jwt-assertion"
ISSUER = "https://cloud.google.com/iap"
CERTS_URL = "https://www.gstatic.com/iap/verify/public_key"  # key id -> PEM public key
AUDIENCE_ENV = "KUMOFLOW_IAP_AUDIENCE"
CERTS_FILE_ENV = "KUMOFLOW_IAP_CERTS_FILE"
CLOCK_SKEW_S = 30  # what IAP's documentation allows on iat and exp

LOG = logging.getLogger("kumoflow.ui")
# google-auth carries no annotations; typed names keep mypy --strict meaningful here.
_decode_header: Callable[[str], Any] = jwt.decode_header
_decode_jwt: Callable[..., Any] = jwt.decode


class IapVerifier:
    """Verifies IAP assertions for one audience against IAP's keys (cached: adapters.CertCache)."""

    def __init__(
        self,
        audience: str,
        *,
        keys_file: str | None = None,
        max_age: float = 3600.0,
        min_refresh: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audience = audience
        source = certs_file(keys_file) if keys_file else functools.partial(fetch_certs, CERTS_URL)
        self._keys = CertCache(source, max_age=max_age, min_refresh=min_refresh, clock=clock)

    @classmethod
    def from_env(cls, audience: str) -> IapVerifier:
        return cls(audience, keys_file=os.environ.get(CERTS_FILE_ENV) or None)

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
            claims = _decode_jwt(
                assertion,
                certs=self._keys.get(kid if isinstance(kid, str) else None),
                audience=self.audience,
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
