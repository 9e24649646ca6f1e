"""Backend selection: `--backend memory|emulator|all` (default: all where the stack can run).

The emulator stack for tests runs on its own ports and state folder, so a developer's
`kumoflow dev up` stack is never touched. `scripts/test` starts it before pytest; the session
fixture reuses it (or starts it when pytest is run directly).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

_BASE = int(os.environ.get("KUMOFLOW_TEST_PORT_BASE", "18680"))
TEST_STACK_ENV = {
    "KUMOFLOW_STATE_DIR": os.environ.get("KUMOFLOW_TEST_STATE_DIR", f"/tmp/kumoflow-test-{_BASE}"),
    "KUMOFLOW_PUBSUB_PORT": str(_BASE + 1),
    "KUMOFLOW_FIRESTORE_PORT": str(_BASE + 2),
    "KUMOFLOW_FIRESTORE_WS_PORT": str(_BASE + 3),
    "KUMOFLOW_GCS_PORT": str(_BASE + 4),
    "KUMOFLOW_FUNCTIONS_PORT": str(_BASE + 10),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=["memory", "emulator", "all"],
        default="all",
        help="which backends the end-to-end tests run on",
    )


def backends(config: pytest.Config) -> list[str]:
    choice = config.getoption("--backend")
    return ["memory", "emulator"] if choice == "all" else [choice]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", backends(metafunc.config), indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "emulator" in backends(config):
        return
    skip = pytest.mark.skip(reason="emulator tests not selected (--backend memory)")
    for item in items:
        if "emulator" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    """The test stack, up and wired; its env is applied to this process while tests run."""
    import emulators

    missing = emulators.prerequisites()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("emulator prerequisites missing in CI: " + "; ".join(missing))
        pytest.skip("emulator prerequisites missing: " + "; ".join(missing))
    saved = dict(os.environ)
    os.environ.update(TEST_STACK_ENV)
    from orchestrator._devstack import DevStack, down, up

    stack = DevStack.from_env()
    was_running = emulators.status(stack.config).healthy
    up(stack)
    emulators.clear_data(stack.config)
    yield stack.env()
    if not was_running:  # leave a stack someone else started (scripts/test) as it was
        down(stack)
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> object:
    from tests.backends import MemoryBackend

    if request.param == "memory":
        return MemoryBackend()
    return request.getfixturevalue("emulator_backend")


@pytest.fixture
def emulator_backend(stack_env: dict[str, str]) -> object:
    from tests.backends import EmulatorBackend

    return EmulatorBackend()
