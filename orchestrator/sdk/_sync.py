"""sync_compatible, as in Prefect: an async function that sync code can call like a sync one."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run(coro: Coroutine[Any, Any, R]) -> R:
    if not _loop_running():
        return asyncio.run(coro)
    # Forced sync inside a running loop: a thread of its own, so this loop is not re-entered.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # re-raised in the caller
            box["error"] = e

    thread = threading.Thread(target=target, name="kumoflow-sync-compatible")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def sync_compatible(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """Called from sync code (a sync task, a worker thread): runs to the end and returns the
    value. Called with an event loop running (async code): returns the coroutine to await.
    `_sync=True` / `_sync=False` force either. Put `@task` on top to make it a task: the worker
    calls it from a thread, so it runs synchronously there."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"sync_compatible wraps an async def, not {fn!r}")

    @functools.wraps(fn)
    def wrapper(*args: Any, _sync: bool | None = None, **kwargs: Any) -> Any:
        coro = fn(*args, **kwargs)
        if _sync is False or (_sync is None and _loop_running()):
            return coro
        return _run(coro)

    wrapper.aio = fn  # type: ignore[attr-defined]  # the plain coroutine function
    return wrapper  # type: ignore[return-value]
