"""The code a task runs, by content, so runs are pinned to code and not only to the DAG.

`module_digest`: the bytes of the file a function is defined in. A flow's version covers these
for every module its tasks come from (FlowSpec.code), and each attempt records the digest of
the module its worker imported (Attempt.code): a fix that changes no DAG is a new version, and
`runs show` says which code each attempt ran, even one that ran after a redeploy.

`source_digest`: the source of one function, as Prefect's TASK_SOURCE cache policy hashes it
(`inspect.getsource`, falling back to the bytecode where no source is found), so a cache key
changes when the task changes and not when a neighbour in its module does.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

DIGEST_CHARS = 12


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
