"""A local stack for tests: its own ports and state folder, so a developer's `kumoflow dev up`
stack is never touched (KUMOFLOW_TEST_PORT_BASE moves it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator import emulators


def stack_env(base: int, state_dir: str) -> dict[str, str]:
    """The environment of a local stack on ports from `base` (the product's one layout,
    emulators.PORTS), state kept in `state_dir`."""
    return {"KUMOFLOW_STATE_DIR": state_dir, **emulators.port_env(base)}


_BASE = int(os.environ.get("KUMOFLOW_TEST_PORT_BASE", "18680"))
TEST_STACK_ENV = stack_env(
    _BASE, os.environ.get("KUMOFLOW_TEST_STATE_DIR", f"/tmp/kumoflow-test-{_BASE}")
)


@contextmanager
def stack_for_tests(*, clear: bool = True) -> Iterator[dict[str, str]]:
    """The test stack up and wired (BigQuery and Cloud Run too), its env applied to this
    process while the block runs.

    A stack that was already running (started by a test script) is left running."""
    from orchestrator.local import DevStack, down, up

    saved = dict(os.environ)
    os.environ.update(TEST_STACK_ENV)
    stack = DevStack.from_env()
    was_running = emulators.status(stack.config).healthy
    try:
        up(stack, services=tuple(emulators.Service))
        if clear:
            emulators.clear_data(stack.config)
        yield stack.env()
    finally:
        if not was_running:
            down(stack)
        os.environ.clear()
        os.environ.update(saved)
