"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def restored_environ() -> Iterator[None]:
    """The CLI's --project path drops the emulator variables from os.environ (a cloud command
    must not reach the local stack): give them back to the tests that run after."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
