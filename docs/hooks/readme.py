"""mkdocs hook: `<!-- readme: Title -->` on a page becomes that section of README.md, so the
concepts and benchmarks pages have one source (the README) and cannot drift from it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
MARK = re.compile(r"^<!-- readme: (?P<title>.+?) -->$", re.M)


def section(text: str, title: str) -> str:
    """The body of the README heading `title` (any level), down to the next heading as high."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = re.match(r"^(#+) (.*)$", line)
        if m and m[2].strip() == title:
            level = len(m[1])
            end = next(
                (j for j in range(i + 1, len(lines)) if re.match(rf"^#{{1,{level}}} ", lines[j])),
                len(lines),
            )
            return _fences("".join(lines[i + 1 : end]).strip("\n")).replace("](docs/", "](")
    raise ValueError(f"README.md has no section {title!r}")


def _fences(body: str) -> str:
    """Opening fences without a language become `text` (the docs' rule: say what a block is)."""
    out, inside = [], False
    for line in body.splitlines(keepends=True):
        bare = line.strip() == "```"
        if line.startswith("```"):
            inside = not inside
        out.append("```text\n" if bare and inside else line)
    return "".join(out)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    text = README.read_text()
    return MARK.sub(lambda m: section(text, m["title"]), markdown)
