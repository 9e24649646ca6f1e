"""Calling a user's task function: arguments bound by name, pydantic models coerced, async
functions awaited, and a timeout that fails the attempt (a thread cannot be killed)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import queue
import threading
import typing
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pydantic import BaseModel, TypeAdapter


def call_with(fn: Callable[..., Any], args: dict[str, Any]) -> Any:
    """Call with arguments bound by name, honouring *args, **kwargs and positional-only."""
    args = _coerce(fn, args)
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name not in args:
            continue
        if p.kind is p.VAR_POSITIONAL:
            positional.extend(args[p.name])
        elif p.kind is p.VAR_KEYWORD:
            keywords.update(args[p.name])
        elif p.kind is p.POSITIONAL_ONLY:
            positional.append(args[p.name])
        else:
            keywords[p.name] = args[p.name]
    return fn(*positional, **keywords)


@functools.lru_cache(maxsize=512)
def _model_params(fn: Callable[..., Any]) -> dict[str, TypeAdapter[Any]]:
    """Parameters annotated with pydantic models (GcsObject, ...): JSON in, models out."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: pass values as they are
        return {}
    out: dict[str, TypeAdapter[Any]] = {}
    for name, hint in hints.items():
        kinds = typing.get_args(hint) or (hint,)
        if name != "return" and any(
            isinstance(k, type) and issubclass(k, BaseModel) for k in kinds
        ):
            out[name] = TypeAdapter(hint)
    return out


def _coerce(fn: Callable[..., Any], args: dict[str, Any]) -> dict[str, Any]:
    # Keyed by the plain function: a method bound to a fresh object per call would crowd the cache.
    adapters = _model_params(getattr(fn, "__func__", fn))
    if not adapters:
        return args
    return {k: adapters[k].validate_python(v) if k in adapters else v for k, v in args.items()}


def invoke(fn: Callable[..., Any], args: dict[str, Any], timeout: float | None) -> Any:
    if inspect.iscoroutinefunction(fn):

        async def main() -> Any:
            return await asyncio.wait_for(call_with(fn, args), timeout)

        return asyncio.run(main())
    if timeout is None:
        return call_with(fn, args)
    # A thread cannot be killed: on timeout the attempt fails and the thread is abandoned.
    future: Future[Any] = Future()
    context = contextvars.copy_context()

    def job() -> None:
        if future.set_running_or_notify_cancel():  # False: it timed out before it started
            try:
                future.set_result(context.run(call_with, fn, args))
            except BaseException as e:  # re-raised in the caller's thread
                future.set_exception(e)

    _DAEMONS.submit(job)
    try:
        return future.result(timeout)
    except TimeoutError:
        if not future.done():
            future.cancel()
            raise TimeoutError(f"task exceeded its timeout of {timeout} s") from None
    return future.result()  # it ended as the wait did, or raised a TimeoutError of its own


class _Daemons:
    """Reused daemon threads for timed calls: starting a thread per call cost more than the rest
    of an in-process task's overhead. Daemons, unlike ThreadPoolExecutor's workers, never hold
    up the interpreter's exit when an abandoned call hangs."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1  # an idle thread is reserved for this job
        self._jobs.put(job)
        if spawn:
            threading.Thread(target=self._serve, daemon=True, name="kumoflow-task").start()

    def _serve(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1


_DAEMONS = _Daemons()
