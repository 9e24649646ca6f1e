"""`kumoflow init` (the scaffold's own tests pass on both backends), `kumoflow check` on a
Prefect file, and every command's help showing an example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orchestrator.cli import main

PREFECT_FLOW = """from prefect import flow, task
from prefect.tasks import task_input_hash
from prefect.blocks.system import Secret


@task(retries=3, cache_key_fn=task_input_hash, task_run_name="double-{n}")
def double(n: int) -> int:
    return 2 * n


@task(on_failure=[print])
def total(xs: list[int]) -> int:
    return sum(xs)


@flow(name="numbers", task_runner=None)
async def numbers(items: list[int]) -> int:
    doubled = double.map(items)
    if len(items) > 3:
        pass
    return total.submit(doubled, wait_for=[doubled]).result()


if __name__ == "__main__":
    numbers.serve(name="nightly", cron="0 3 * * *")
"""


def _init(tmp_path: Path) -> Path:
    project = tmp_path / "My Project"
    result = CliRunner().invoke(main, ["init", str(project), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["project"] == "my-project"
    return project


def test_init_writes_the_scaffold_and_never_overwrites(tmp_path: Path) -> None:
    project = _init(tmp_path)
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == [".gitignore", "README.md", "flows.py", "pyproject.toml", "tests/test_flows.py"]
    assert 'dependencies = ["kumoflow @ file:///' in (project / "pyproject.toml").read_text()
    assert 'INBOX = "my-project-inbox"' in (project / "flows.py").read_text()
    (project / "flows.py").write_text("# mine\n")
    again = CliRunner().invoke(main, ["init", str(project)])
    assert again.exit_code == 2
    assert "already has .gitignore, README.md, flows.py, pyproject.toml" in again.output
    assert (project / "flows.py").read_text() == "# mine\n"


def test_the_scaffold_runs_in_process(tmp_path: Path) -> None:
    project = _init(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "flows.py:word_count", "--json",
         "--param", "text=to be or not to be"],
        cwd=project, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] == {"to": 2, "be": 2, "or": 1, "not": 1}


def _scaffold_pytest(project: Path, backend: str) -> subprocess.CompletedProcess[str]:
    # The project's own pytest configuration, not this repository's (rootdir is the project).
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--backend={backend}"],
        cwd=project, capture_output=True, text=True, check=False, env={**os.environ},
    )  # fmt: skip


def test_the_scaffolds_tests_pass_in_memory(tmp_path: Path) -> None:
    out = _scaffold_pytest(_init(tmp_path), "memory")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed" in out.stdout


@pytest.mark.emulator
def test_the_scaffolds_tests_pass_on_the_stack(tmp_path: Path, stack_env: dict[str, str]) -> None:
    # The stack is up (stack_env), so the project's session reuses it and leaves it running.
    out = _scaffold_pytest(_init(tmp_path), "emulator")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed" in out.stdout


def test_check_reads_a_prefect_file_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "prefect_flow.py"
    path.write_text(PREFECT_FLOW)
    result = CliRunner().invoke(main, ["check", str(path), "--json"])
    assert result.exit_code == 1  # something is unsupported
    found = {
        (f["line"], f["verdict"], f["construct"]) for f in json.loads(result.output)["findings"]
    }
    assert found == {
        (1, "change", "from prefect import flow, task"),
        (2, "change", "task_input_hash"),
        (3, "unsupported", "prefect.blocks.system.Secret"),
        (6, "change", "@task(task_run_name=...)"),
        (11, "unsupported", "@task(on_failure=...)"),
        (16, "change", "@flow(task_runner=...)"),
        (17, "change", "async def numbers (a flow)"),
        (18, "ok", ".map(...)"),
        (19, "change", "if over a run-time value"),
        (21, "ok", ".submit(...)"),
        (21, "ok", "wait_for=[...]"),
        (25, "change", "numbers.serve(...)"),
    }


def test_check_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "f.py"
    path.write_text("from prefect import flow\n\n\n@flow(retries=1)\ndef f() -> None: ...\n")
    runner = CliRunner()
    plain = runner.invoke(main, ["check", str(path)])
    assert plain.exit_code == 0
    assert f"{path}:1: change" in plain.output
    assert "`from orchestrator import flow`" in plain.output
    assert runner.invoke(main, ["check", str(path), "--strict"]).exit_code == 1
    path.write_text("def (:\n")
    bad = runner.invoke(main, ["check", str(path)])
    assert bad.exit_code == 2
    assert "fix the syntax and check again" in bad.output


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out += _paths(cmd, (*prefix, name))
    return out


@pytest.mark.parametrize("path", _paths(main), ids=" ".join)
def test_every_commands_help_shows_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    examples = result.output.split("Examples:\n", 1)[1]
    assert examples.lstrip().startswith("kumoflow " + path[0]) or "kumoflow" in examples


def test_shell_completion_is_generated_for_bash() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from orchestrator.cli import main; main(prog_name='kumoflow')"],
        env={**os.environ, "_KUMOFLOW_COMPLETE": "bash_source"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    # click names the function after the program; the source is what the docs tell to eval.
    assert "complete -o nosort -F" in out.stdout
