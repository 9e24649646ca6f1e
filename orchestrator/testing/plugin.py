"""pytest plugin (`-p orchestrator.testing.plugin`): backend selection and the test stack.

`--backend memory|emulator|all` (default all, where the stack can run) parametrizes every test
that takes the `backend` fixture; tests marked `emulator` are skipped with `--backend memory`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from orchestrator.testing._backends import Backend, MemoryBackend, StackBackend


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=["memory", "emulator", "all"],
        default="all",
        help="which backends kumoflow's end-to-end tests run on",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator: needs the local emulator stack (Pub/Sub, Firestore, fake-gcs-server)"
    )


def selected(config: pytest.Config) -> list[str]:
    choice = config.getoption("--backend")
    return ["memory", "emulator"] if choice == "all" else [choice]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected(metafunc.config), indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "emulator" in selected(config):
        return
    skip = pytest.mark.skip(reason="emulator tests not selected (--backend memory)")
    for item in items:
        if "emulator" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    """The test stack, up and wired, with its data cleared; its env applies while tests run."""
    from orchestrator import emulators

    missing = emulators.prerequisites(tuple(emulators.Service))
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("emulator prerequisites missing in CI: " + "; ".join(missing))
        pytest.skip("emulator prerequisites missing: " + "; ".join(missing))
    from orchestrator.testing._stack import stack_for_tests

    with stack_for_tests() as env:
        yield env


@pytest.fixture
def memory_backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def emulator_backend(stack_env: dict[str, str]) -> StackBackend:
    return StackBackend()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return MemoryBackend()
    backend: StackBackend = request.getfixturevalue("emulator_backend")
    return backend
