"""Every code block of the tutorial and the how-tos runs, in order, as a reader would run it.

Per page, in a fresh folder: a block with a `title="path"` is a file the reader writes there;
`bash` blocks run (`set -euo pipefail`; the folder a block `cd`s into is where the next one
starts); untitled `python` blocks run as scripts. The comment line just above a fence may say
`<!-- stack -->` (needs the local stack: run with the emulator backend, skipped with
`--backend memory`) or `<!-- not run: REASON -->` (a cloud command; the reason is required).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.testing.plugin import selected

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = ["tutorial.md", *sorted(p.relative_to(DOCS).as_posix() for p in DOCS.glob("howto/*.md"))]
FENCE = re.compile(
    r"(?:^<!-- (?P<mark>[^>]*?) -->\n)?^```(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S
)
RUNNABLE = {"bash", "python"}


@dataclass
class Block:
    line: int
    lang: str
    title: str | None
    mark: str
    body: str


def blocks(page: str) -> list[Block]:
    text = (DOCS / page).read_text()
    found = []
    for m in FENCE.finditer(text):
        info = m["info"].strip()
        title = re.search(r'title="([^"]+)"', info)
        found.append(
            Block(
                line=text.count("\n", 0, m.start("info")) + 1,
                lang=info.split(" ", 1)[0],
                title=title[1] if title else None,
                mark=(m["mark"] or "").strip(),
                body=m["body"],
            )
        )
    return found


@pytest.mark.parametrize("page", PAGES)
def test_every_block_says_what_it_is(page: str) -> None:
    for b in blocks(page):
        where = f"{page}:{b.line}"
        assert b.lang, f"{where}: a code block needs a language (bash, python, text, ...)"
        assert b.title or b.lang in RUNNABLE or b.lang == "text", f"{where}: runs how?"
        assert b.mark in ("", "stack") or b.mark.startswith("not run: "), where
        assert b.mark != "not run: ", f"{where}: say why it is not run"


@pytest.mark.parametrize("page", PAGES)
def test_the_page_runs(page: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    on_stack = "emulator" in selected(request.config)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)  # the reader's shell: kumoflow as installed, not this checkout
    if on_stack and any(b.mark == "stack" for b in blocks(page)):
        env.update(request.getfixturevalue("stack_env"))
        from orchestrator.testing import TEST_STACK_ENV

        env.update(TEST_STACK_ENV)  # `kumoflow dev up` and friends find the test stack
    cwd = tmp_path
    for b in blocks(page):
        if b.mark.startswith("not run") or (b.mark == "stack" and not on_stack):
            continue
        where = f"{page}:{b.line}"
        if b.title:
            path = cwd / b.title
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(b.body)
        elif b.lang == "python":
            script = tmp_path / f"_block_{b.line}.py"
            script.write_text(b.body)
            _run([sys.executable, str(script)], cwd, env, where)
        elif b.lang == "bash":
            here = tmp_path / "_cwd"
            script = f"set -euo pipefail\n{b.body}\npwd > {here}\n"
            _run(["bash", "-c", script], cwd, env, where)
            cwd = Path(here.read_text().strip())


def _run(cmd: list[str], cwd: Path, env: dict[str, str], where: str) -> None:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"{where} exited {out.returncode}\n{out.stdout}\n{out.stderr}"


def test_the_tutorials_flows_py_is_what_init_writes(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import main

    assert CliRunner().invoke(main, ["init", str(tmp_path / "notes")]).exit_code == 0
    (shown,) = [b for b in blocks("tutorial.md") if b.title == "flows.py"]
    assert shown.body == (tmp_path / "notes" / "flows.py").read_text()
