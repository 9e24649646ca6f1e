"""Calling a user's task function: arguments bound by name, pydantic models coerced, async
functions awaited, and a timeout that fails the attempt (a thread cannot be killed)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import typing
from collections.abc import Callable
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
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call_with(fn, args)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), daemon=True, name="kumoflow-task")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"task exceeded its timeout of {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["value"]
