"""mkdocs hook: `<!-- cli-help -->` becomes every command's `--help`, generated from the CLI
itself, so the reference is always the installed command's."""

from __future__ import annotations

from typing import Any

import click
from click.testing import CliRunner


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out += _paths(cmd, (*prefix, name))
    return out


def reference() -> str:
    from orchestrator.cli import main

    parts = []
    for path in _paths(main):
        text = CliRunner().invoke(main, [*path, "--help"], prog_name="kumoflow", color=False)
        parts.append(f"## kumoflow {' '.join(path)}\n\n```text\n{text.output.rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if "<!-- cli-help -->" not in markdown:
        return markdown
    return markdown.replace("<!-- cli-help -->", reference())
