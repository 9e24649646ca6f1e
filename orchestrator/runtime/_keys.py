"""Concurrency keys computed from a task's inputs (`concurrency=lambda region: f"api-{region}"`).

The flow's spec stays data: its options say only that the key is computed
(TaskOptions.computed_concurrency); the function stays with the task's code. The worker that
claims an attempt, which has its inputs, calls it before it takes the slot, and records the key
it got on the attempt (Attempt.slot_key): whatever frees that slot later (an end on control's
path, a redelivered completion) reads the record, never calls user code again. Slots and
tickets carry their key themselves (the sweeper, `runs show`, `limits ls` read those).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError

from orchestrator.contracts import LimitKey
from orchestrator.errors import FlowDefinitionError, KumoflowError

_ATTR = "__kumoflow_concurrency__"
_KEY: TypeAdapter[str] = TypeAdapter(LimitKey)


class ConcurrencyKeyError(KumoflowError, ValueError):
    """A task's concurrency key function raised, or returned something that is no key: the
    attempt fails (retried as the task says), naming the task."""


def attach_key_function(
    fn: Callable[..., Any], key_fn: Callable[..., Any], params: Sequence[str], task: str
) -> None:
    """Keep `key_fn` with the task function `fn` (whose parameters are `params`); a key
    function that names a parameter the task does not have is refused here, at definition."""
    sig = inspect.signature(key_fn)
    names = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty
    ]
    unknown = sorted(set(names) - set(params))
    if unknown:
        raise FlowDefinitionError(
            f"@task {task}: concurrency= takes {', '.join(unknown)}, which {task} has not"
            f" (its parameters: {', '.join(params) or 'none'})"
        )
    setattr(fn, _ATTR, key_fn)


def key_parameters(fn: Callable[..., Any]) -> tuple[str, ...] | None:
    """The task parameters the key function of `fn` reads (all of them for **kwargs); None
    when `fn` has none (a task defined without one, or code that changed under the spec)."""
    key_fn = getattr(fn, _ATTR, None)
    if key_fn is None:
        return None
    params = inspect.signature(key_fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return tuple(inspect.signature(fn).parameters)
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def computed_key(fn: Callable[..., Any], task: str, args: Mapping[str, Any]) -> str:
    """Call the key function of `fn` with the arguments it names."""
    key_fn = getattr(fn, _ATTR, None)
    names = key_parameters(fn)
    if key_fn is None or names is None:
        raise ConcurrencyKeyError(
            f"task {task!r} has a computed concurrency key, but its code has no key function"
        )
    try:
        key = key_fn(**{n: args[n] for n in names if n in args})
    except Exception as e:
        raise ConcurrencyKeyError(
            f"the concurrency key function of task {task!r} raised {type(e).__name__}: {e}"
        ) from e
    if not isinstance(key, str):
        raise ConcurrencyKeyError(
            f"the concurrency key function of task {task!r} returned {type(key).__name__}"
            f" {key!r}, not a string"
        )
    try:
        return _KEY.validate_python(key)
    except ValidationError:
        raise ConcurrencyKeyError(
            f"the concurrency key function of task {task!r} returned {key!r}: a key is 1-100"
            " letters, digits or . _ : - (starting with a letter or digit)"
        ) from None
