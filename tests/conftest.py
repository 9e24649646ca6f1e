"""Fixtures come from kumoflow's own pytest plugin (`-p orchestrator.testing.plugin` in
pyproject's addopts), the same one users enable: `--backend memory|emulator|all`."""

from collections.abc import Iterator

import pytest

from orchestrator.adapters import HOME_ENV


@pytest.fixture(autouse=True, scope="session")
def _kumoflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`kumoflow run` keeps its runs in KUMOFLOW_HOME (default ~/.kumoflow): the tests' runs,
    and those of the CLI processes they start, go to a folder of the session instead."""
    patch = pytest.MonkeyPatch()
    patch.setenv(HOME_ENV, str(tmp_path_factory.mktemp("kumoflow-home")))
    yield
    patch.undo()
