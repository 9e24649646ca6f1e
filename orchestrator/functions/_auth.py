"""Pub/Sub push authentication: every push must carry the OIDC token Google signed for it.

A push subscription with an OIDC token (infra/pubsub.tf) sends `Authorization: Bearer <JWT>`
signed by Google, with `aud` = the function URL and `email` = the push service account.
`push_authenticated` wraps each function target and checks that token before anything else
runs; a refused request changes nothing (no handler, no dead letter: an unauthenticated
caller's body is not our input).

- `KUMOFLOW_PUSH_AUTH`: `oidc` (default) or `off` (the local stack: its emulator sends no token).
- `KUMOFLOW_PUSH_AUDIENCE`, `KUMOFLOW_PUSH_SERVICE_ACCOUNT`: what `aud` and `email` must be.
- `KUMOFLOW_PUSH_CERTS_FILE`: verify against the certificates in this JSON file (key id -> PEM)
  instead of fetching Google's: a stack with no network (tests sign tokens with their own key).

No token → 401; a token that does not check out → 403; auth on but not configured → 500 (our
fault, not the caller's; Pub/Sub keeps redelivering until the deployment is fixed, so nothing is
lost and nothing is let through). The check applies only when there is an HTTP request: a direct
Python call (tests, embedding) is in-process code, already trusted. On the platform every
invocation comes through functions-framework's Flask view, so a request context always exists.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import flask
from google.auth import exceptions as auth_exceptions
from google.auth import jwt
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, HTTPException, InternalServerError, Unauthorized

from orchestrator.adapters import CertCache, CertsSource, certs_file, fetch_certs
from orchestrator.errors import KumoflowError
from orchestrator.runtime import LOGGER, configure_json_logging

MODE_ENV = "KUMOFLOW_PUSH_AUTH"
AUDIENCE_ENV = "KUMOFLOW_PUSH_AUDIENCE"
ACCOUNT_ENV = "KUMOFLOW_PUSH_SERVICE_ACCOUNT"
ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"  # kid -> PEM X.509 certificate
CLOCK_SKEW_SECONDS = 10

# google-auth's jwt functions carry no annotations; typed names keep mypy --strict meaningful here.
_decode_header: Callable[[str], Any] = jwt.decode_header
_decode_jwt: Callable[..., Any] = jwt.decode
F = TypeVar("F", bound=Callable[[Any], None])


class Refused(KumoflowError):
    """Why a push request is refused, and the HTTP status it gets (never leaves this module)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


CERTS_FILE_ENV = "KUMOFLOW_PUSH_CERTS_FILE"


def _certs_source() -> CertsSource:
    path = os.environ.get(CERTS_FILE_ENV)
    return certs_file(path) if path else functools.partial(fetch_certs, GOOGLE_CERTS_URL)


_certs = [CertCache(_certs_source())]
_off_noted = threading.Event()


def use_push_certs(
    source: CertsSource | None, *, clock: Callable[[], float] = time.monotonic
) -> None:
    """Verify push tokens against `source` (tests sign with their own key); None: as configured
    (KUMOFLOW_PUSH_CERTS_FILE, else Google's).

    `clock` (monotonic seconds) times the cache's refreshes."""
    _certs[0] = CertCache(source or _certs_source(), clock=clock)


def verify_push(authorization: str | None, env: Mapping[str, str]) -> Mapping[str, Any] | None:
    """The verified claims (None when auth is off); raises `Refused` with the status to answer."""
    mode = env.get(MODE_ENV, "oidc").strip().lower() or "oidc"
    if mode == "off":
        return None
    if mode != "oidc":
        raise Refused(500, f"{MODE_ENV}={env.get(MODE_ENV)!r} is neither 'oidc' nor 'off'")
    audience = env.get(AUDIENCE_ENV, "").strip()
    account = env.get(ACCOUNT_ENV, "").strip()
    for name, value in ((AUDIENCE_ENV, audience), (ACCOUNT_ENV, account)):
        if not value:
            raise Refused(500, f"push auth is on but {name} is not set; refusing every push")
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "no bearer token in the Authorization header")
    claims = _decode(token, audience)
    if claims.get("iss") not in ISSUERS:
        raise Refused(403, f"token issuer {claims.get('iss')!r} is not Google")
    if claims.get("email") != account:
        raise Refused(403, f"token email {claims.get('email')!r} is not the push service account")
    if claims.get("email_verified") is not True:
        raise Refused(403, "token email is not verified")
    return claims


def _decode(token: str, audience: str) -> Mapping[str, Any]:
    """Signature (RS256 only, Google's key), iat/exp and audience; anything off → 403."""
    try:
        header = _decode_header(token)
        # Google signs RS256 only; google-auth would also take ES256, so pin the algorithm.
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            raise Refused(403, "token is not an RS256 JWT")
        kid = header.get("kid")
        certs = _certs[0].get(kid if isinstance(kid, str) else None)  # TransientError propagates
        claims = _decode_jwt(
            token, certs=certs, audience=audience, clock_skew_in_seconds=CLOCK_SKEW_SECONDS
        )
    except (
        ValueError,
        TypeError,
        LookupError,
        AttributeError,
        auth_exceptions.GoogleAuthError,
    ) as e:
        # Covers malformed segments, bad signature, unknown key, expiry and audience alike.
        raise Refused(403, f"token rejected: {e}") from e
    if not isinstance(claims, dict):
        raise Refused(403, "token claims are not an object")
    return claims


def _refuse(function: str, refused: Refused) -> HTTPException:
    configure_json_logging()  # idempotent; the runtime may not be built yet on this instance
    level = logging.ERROR if refused.status == 500 else logging.WARNING
    LOGGER.log(
        level,
        "push refused (%d): %s",
        refused.status,
        refused.reason,
        extra={"function": function, "reason": refused.reason},
    )
    # The body stays generic: the reason is for our logs, not for an unknown caller.
    if refused.status == 401:
        return Unauthorized(www_authenticate=WWWAuthenticate("bearer"))
    if refused.status == 403:
        return Forbidden()
    return InternalServerError("push authentication is not configured")


def push_authenticated(func: F) -> F:
    """Check the push request's OIDC token (if there is a request) before `func` runs."""

    @functools.wraps(func)
    def wrapper(cloud_event: Any) -> None:
        if flask.has_request_context():
            try:
                claims = verify_push(flask.request.headers.get("Authorization"), os.environ)
            except Refused as refused:
                raise _refuse(func.__name__, refused) from None
            if claims is None and not _off_noted.is_set():
                _off_noted.set()  # once per instance: visible if it is ever off in the cloud
                configure_json_logging()
                LOGGER.warning(
                    "push authentication is off (%s=off)",
                    MODE_ENV,
                    extra={"function": func.__name__},
                )
        func(cloud_event)

    return cast(F, wrapper)
