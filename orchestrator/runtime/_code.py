"""The code a task runs, by content, so runs are pinned to code and not only to the DAG.

`module_digest`: the bytes of the file a function is defined in. A flow's version covers these
for every module its tasks come from (FlowSpec.code), and each attempt records the digest of
the module its worker imported (Attempt.code): a fix that changes no DAG is a new version, and
`runs show` says which code each attempt ran, even one that ran after a redeploy.

`code_files` / `code_digest`: a flow's folder as a deploy ships it, and its digest: the bundle
a flow's runs are pinned to (FlowSpec.bundle), whose worker serves them until they end.

`source_digest`: the source of one function, as Prefect's TASK_SOURCE cache policy hashes it
(`inspect.getsource`, falling back to the bytecode where no source is found), so a cache key
changes when the task changes and not when a neighbour in its module does.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

DIGEST_CHARS = 12
# A task worker's routing by bundle (orchestrator.functions decides with them; the stack and
# Terraform set them): the bundles it leaves to their kept workers, or the one it serves.
RETAINED_ENV = "KUMOFLOW_RETAINED_CODE"
SERVES_ENV = "KUMOFLOW_SERVES_CODE"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


# Per function object: what a process imported does not change while it lives, and every
# attempt asks (reading the file each time would put disk reads on the hot path).
@functools.cache
def module_digest(fn: Callable[..., Any]) -> str | None:
    """Digest of the source file `fn` is defined in; None when it has none (a builtin)."""
    try:
        path = inspect.getsourcefile(inspect.unwrap(fn))
    except TypeError:
        return None
    if path is None or not Path(path).is_file():
        return None
    return _digest(Path(path).read_bytes())


@functools.cache
def source_digest(fn: Callable[..., Any]) -> str:
    """Digest of `fn`'s own source (its bytecode when the source cannot be read)."""
    plain = inspect.unwrap(fn)
    try:
        return _digest(inspect.getsource(plain).encode())
    except (OSError, TypeError):
        code = getattr(plain, "__code__", None)
        return _digest(code.co_code if code is not None else repr(plain).encode())


# Files of the user's folder the buildpack would read as its own build instructions.
BUILD_FILES = frozenset(
    {"requirements.txt", "pyproject.toml", "setup.cfg", "Pipfile", "Pipfile.lock", "poetry.lock",
     "uv.lock", "Procfile", "project.toml"}
)  # fmt: skip


def _data_file(path: Path) -> bool:
    return path.suffix not in (".pyc", ".pyo")


def tree_files(folder: Path, arc: str) -> Iterable[tuple[str, Path]]:
    """(name in the bundle, path) of `folder`'s files under `arc`, without caches and dot files."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
            continue
        if path.is_file() and _data_file(path):
            yield f"{arc}/{rel.as_posix()}" if arc else rel.as_posix(), path


def code_files(flow_file: Path) -> Iterable[tuple[str, Path]]:
    """The flow file's folder as `python file.py` sees it: its files (modules and the data they
    read) and its packages with theirs. Folders that are not packages stay out (a venv, data
    sets); so do the build files the buildpack would take as its own instructions."""
    folder = flow_file.parent
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == "__init__.py" or path.name in BUILD_FILES:
            continue
        if path.is_file() and _data_file(path):
            yield path.name, path
        elif path.is_dir() and (path / "__init__.py").exists():
            yield from tree_files(path, path.name)


def code_digest(flow_files: Sequence[Path]) -> str:
    """Digest of the code the flows in `flow_files` ship with: names and bytes of code_files."""
    h = hashlib.sha256()
    for arc, path in sorted({a: p for f in flow_files for a, p in code_files(f)}.items()):
        h.update(arc.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:DIGEST_CHARS]
