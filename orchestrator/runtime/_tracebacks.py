"""Tracebacks shown from the user's first frame: what kumoflow and the standard library ran
before the task function (the worker, its timeout thread, the call) is hidden behind one line.

A stored traceback is text (it crosses processes and outlives the code that raised it), so the
rule reads the text: in each `Traceback (most recent call last):` block, the leading frames of
kumoflow's own modules (recognized by their path inside the package, wherever it is installed)
or of Python's standard library are replaced by a line saying how many were hidden. A block
with no frame of anyone else (kumoflow failed by itself) is kept whole. Only leading frames
go: kumoflow's frames below the user's (an `orchestrator.io` call that raised) stay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HEADER = "Traceback (most recent call last):"
_FRAME = re.compile(r'^  File "(?P<path>[^"]*)", line \d+')
# Python's standard library wherever Python lives (a venv, a buildpack's /layers/...):
# lib/pythonX.Y/ itself, not the packages installed under it; and frozen modules.
_STDLIB = re.compile(r"(/lib/python3\.\d+/(?!.*(site|dist)-packages/))|^<frozen ")
_PACKAGE = Path(__file__).resolve().parents[1]  # orchestrator/


@dataclass(frozen=True)
class UserTrace:
    text: str  # the traceback from the user's first frame
    hidden: int  # frames dropped before it (0: `text` is the whole traceback)


@cache
def _ours() -> frozenset[str]:
    """kumoflow's module paths as they end a frame's file name: "orchestrator/runtime/x.py"."""
    root = _PACKAGE.parent
    return frozenset(p.relative_to(root).as_posix() for p in _PACKAGE.rglob("*.py"))


def is_ours(path: str) -> bool:
    """A frame of kumoflow's package or of the standard library (not the user's)."""
    path = path.replace("\\", "/")
    if _STDLIB.search(path):
        return True
    at = path.rfind(f"/{_PACKAGE.name}/")
    while at >= 0:
        if path[at + 1 :] in _ours():
            return True
        at = path.rfind(f"/{_PACKAGE.name}/", 0, at)
    return False


def user_traceback(text: str) -> UserTrace:
    """`text` with the leading frames that are not the user's hidden (see the module)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    hidden = 0
    i = 0
    while i < len(lines):
        out.append(lines[i])
        i += 1
        if lines[i - 1].rstrip("\r\n") != HEADER:
            continue
        frames: list[tuple[str, list[str]]] = []  # (file, its lines)
        while i < len(lines) and lines[i].startswith("  "):
            found = _FRAME.match(lines[i])
            if found or not frames:
                frames.append((found["path"] if found else "", []))
            frames[-1][1].append(lines[i])
            i += 1
        first = next((n for n, (path, _) in enumerate(frames) if not is_ours(path)), 0)
        if first:
            hidden += first
            plural = "s" if first > 1 else ""
            out.append(f"  [{first} frame{plural} of kumoflow and Python hidden]\n")
        for _, block in frames[first:]:
            out.extend(block)
    return UserTrace("".join(out), hidden)
