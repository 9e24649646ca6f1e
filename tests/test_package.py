"""The wheel as a user installs it: one top-level name, and everything the code finds by path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip")
RUNTIME = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
    "runtime"
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = [*PIP, "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True)
    (found,) = out.glob("kumoflow-*.whl")
    return found


def test_the_wheel_installs_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = [n.removeprefix("orchestrator/") for n in archive.namelist()]
    top = {n.split("/")[0] for n in archive.namelist() if ".dist-info/" not in n}
    assert top == {"orchestrator"}
    # The design card's folders ship under orchestrator/, every module of theirs.
    for folder in ("contracts", "functions", "emulators"):
        shipped = {n.removeprefix(f"{folder}/") for n in names if n.startswith(f"{folder}/")}
        assert shipped == {p.name for p in (ROOT / "orchestrator" / folder).glob("*.py")}
    terraform = {p.relative_to(ROOT).as_posix() for p in (ROOT / "infra").glob("*.tf")}
    assert terraform
    assert terraform <= set(names)


PROBE = """
import importlib.util, sys
import orchestrator, orchestrator.contracts, orchestrator.functions
from orchestrator.cloud import INFRA, bundle_files, bundle_requirements
from orchestrator.local import FUNCTIONS_SOURCE

assert orchestrator.__file__.startswith(sys.argv[1]), orchestrator.__file__
assert FUNCTIONS_SOURCE.is_file(), FUNCTIONS_SOURCE
assert sorted(INFRA.glob("*.tf")), INFRA
# No pyproject.toml beside an installed kumoflow: its runtime extra comes from its metadata.
from packaging.requirements import Requirement
got = [Requirement(line) for line in bundle_requirements([]).lines]
assert got == [Requirement(line) for line in sys.argv[2:]], got
files = bundle_files([], [])
assert "orchestrator/contracts/_events.py" in files, sorted(files)
assert "orchestrator/functions/main.py" in files, sorted(files)
assert not any(n.startswith("orchestrator/emulators/") for n in files)
assert [n for n in ("contracts", "functions", "emulators") if importlib.util.find_spec(n)] == []
"""


def test_the_installed_wheel_finds_its_functions_and_terraform(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [*PIP, "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    # Away from the repository, so only the installed copy can answer.
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROBE), str(site), *RUNTIME],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
