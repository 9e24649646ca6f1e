"""Google's published signing keys (key id -> PEM), fetched and cached per instance: what push
tokens (orchestrator/functions/_auth.py) and IAP's assertions (orchestrator/ui/_iap.py) are
verified against.

Google rotates its keys every few days and publishes the next one ahead of use, so an unknown
key id usually means "refresh". Refreshes, and retries after a failed fetch, are rate-limited so
forged key ids or an outage cannot hammer the endpoint.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping

from orchestrator.errors import TransientError

CertsSource = Callable[[], Mapping[str, str]]


def fetch_certs(url: str) -> Mapping[str, str]:
    """The keys published at `url`; TransientError when they cannot be had."""
    from google.auth import exceptions
    from google.auth.transport.requests import Request

    try:
        response = Request()(url, method="GET", timeout=10)
    except exceptions.TransportError as e:
        raise TransientError(f"cannot fetch signing keys from {url}: {e}") from e
    if response.status != 200:
        raise TransientError(f"signing keys at {url} answered HTTP {response.status}")
    found = json.loads(response.data)
    if not isinstance(found, dict):
        raise TransientError(f"signing keys at {url} are not a JSON object")
    return {str(k): str(v) for k, v in found.items()}


def certs_file(path: str) -> CertsSource:
    """Keys from a JSON file of the same shape: a stack with no network, tests' own keys."""

    def read() -> Mapping[str, str]:
        with open(path, encoding="utf-8") as f:
            found = json.load(f)
        return {str(k): str(v) for k, v in found.items()}

    return read


class CertCache:
    """Keys fetched once, refreshed hourly, or when an unknown key id shows up (at most once a
    `min_refresh`); after a failed fetch the keys held are used until the next try is due."""

    def __init__(
        self,
        source: CertsSource,
        *,
        max_age: float = 3600.0,
        min_refresh: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._max_age = max_age
        self._min_refresh = min_refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._certs: Mapping[str, str] = {}
        self._fetched_at: float | None = None
        self._failed_at: float | None = None

    def get(self, kid: str | None) -> Mapping[str, str]:
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            unknown = kid is not None and kid not in self._certs
            due = age is None or age >= self._max_age or (unknown and age >= self._min_refresh)
            retry = self._failed_at is None or now - self._failed_at >= self._min_refresh
            if due and retry:
                try:
                    self._certs = dict(self._source())
                except Exception:
                    self._failed_at = now
                    raise
                self._fetched_at, self._failed_at = now, None
            if not self._certs:
                raise TransientError("no signing keys: the last fetch failed; retried shortly")
            return self._certs
