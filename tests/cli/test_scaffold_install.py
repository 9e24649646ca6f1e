"""A project made by `kumoflow init` installs outside this repository: in a fresh venv (no
system site-packages, nothing of this checkout on the path), `pip install -e '.[dev]'` takes
kumoflow from the direct reference the scaffold wrote (this checkout) and kumoflow's own
dependencies from the package index pip is configured with; then the project's tests pass.
A kumoflow installed from a wheel pins that wheel, which installs too.

Slow (a venv and a full install: about 1.5 min here), and meant to run everywhere, CI included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    """A reader's shell: no venv active, nothing of this checkout importable."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSAFEPATH"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _sh(*args: str | Path, cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.timeout(900)
def test_the_scaffold_installs_in_a_fresh_venv_and_its_tests_pass(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "notes"), "--json"])
    assert result.exit_code == 0, result.output
    pinned = f"kumoflow @ {ROOT.as_uri()}"  # the checkout this kumoflow runs from
    assert json.loads(result.output)["kumoflow"] == pinned
    project = tmp_path / "notes"
    assert f'dependencies = ["{pinned}"]' in (project / "pyproject.toml").read_text()
    readme = " ".join((project / "README.md").read_text().split())
    assert f"by a direct reference (`{pinned}`)" in readme
    assert 'write `"kumoflow>=0.1.0"` there instead' in readme  # how to move to an index

    venv = tmp_path / "venv"
    _sh(sys.executable, "-m", "venv", venv, cwd=tmp_path)  # no --system-site-packages
    py, pip = venv / "bin" / "python", venv / "bin" / "pip"
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    _sh(pip, "install", "--quiet", "-e", ".[dev]", cwd=project)
    where = _sh(py, "-c", "import orchestrator; print(orchestrator.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv), where  # installed, not this checkout

    tests = _sh(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--backend=memory", cwd=project)
    assert "3 passed" in tests, tests
    run = _sh(
        venv / "bin" / "kumoflow", "run", "flows.py:word_count", "--json",
        "--param", "text=to be or not to be", cwd=project,
    )  # fmt: skip
    assert json.loads(run)["result"] == {"to": 2, "be": 2, "or": 1, "not": 1}

    # The same kumoflow installed from a wheel: the projects it makes pin that wheel.
    dist = tmp_path / "dist"
    _sh(pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("kumoflow-*.whl")
    _sh(pip, "install", "--quiet", "--no-deps", "--force-reinstall", wheel, cwd=tmp_path)
    made = _sh(venv / "bin" / "kumoflow", "init", "from-wheel", "--json", cwd=tmp_path)
    assert json.loads(made)["kumoflow"] == f"kumoflow @ {wheel.as_uri()}"
    _sh(pip, "install", "--quiet", "-e", ".", cwd=tmp_path / "from-wheel")
    assert "3 passed" in _sh(
        py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--backend=memory",
        cwd=tmp_path / "from-wheel",
    )  # fmt: skip
