"""Every test here serves the functions from its own runtime; none leaks into the next.

Push authentication is off by default here (these tests post no tokens, like the local stack);
tests/functions/test_push_auth.py turns it on per test and signs tokens with its own key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator import functions


@pytest.fixture(autouse=True)
def _fresh_function_runtime() -> Iterator[None]:
    yield
    functions.use_runtime(None)


@pytest.fixture(autouse=True)
def _push_auth_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("KUMOFLOW_PUSH_AUDIENCE", "KUMOFLOW_PUSH_SERVICE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUMOFLOW_PUSH_AUTH", "off")
    yield
    functions.use_push_certs(None)
