"""Every test here serves the functions from its own runtime; none leaks into the next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import functions


@pytest.fixture(autouse=True)
def _fresh_function_runtime() -> Iterator[None]:
    yield
    functions.use_runtime(None)
