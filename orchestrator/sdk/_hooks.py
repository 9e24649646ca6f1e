"""Functions by address (`module:qualname`, how workers import tasks and hooks), and state
hooks and notifications as the decorators take them (`on_failure=[fn]`, `notify=[...]`),
turned into the DAG's `Hooks`: functions by "module:qualname" (a worker imports them, as it does
tasks), notification blocks by "KIND/NAME" (loaded when a failure is told, never in the DAG)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from orchestrator.contracts import Hooks
from orchestrator.errors import FlowDefinitionError

HOOK_ARGS = ("on_failure", "on_completion", "on_cancellation")
NO_HOOKS = Hooks()


def function_ref(fn: Callable[..., Any], kind: str) -> str:
    """`module:qualname`, the address task workers import a function by."""
    qualname = getattr(fn, "__qualname__", "")
    if not inspect.isfunction(fn) or "<lambda>" in qualname or "<locals>" in qualname:
        raise FlowDefinitionError(
            f"{kind} {qualname or fn!r} must be a module-level function (or a method of a "
            "module-level class): task workers import it by name in another process, which a "
            "lambda or nested function cannot be"
        )
    return f"{module_name(fn)}:{qualname}"


def module_name(fn: Callable[..., Any]) -> str:
    module = fn.__module__
    if module == "__main__":  # a script run directly: workers import its file by name
        return Path(inspect.getfile(fn)).stem
    return module


class NotificationBlock(Protocol):
    """A saved notification block (orchestrator.notifications): told by its kind and name."""

    kind: str

    @property
    def block_name(self) -> str | None: ...


def hooks_from(settings: Mapping[str, Any], what: str, *, notify: bool = False) -> Hooks:
    """The hooks a decorator's keyword arguments declare (`notify` for flows only)."""
    refs: dict[str, tuple[str, ...]] = {}
    for arg in HOOK_ARGS:
        fns: Sequence[Callable[..., Any]] = settings.get(arg) or ()
        if callable(fns):
            fns = [fns]
        refs[arg] = tuple(function_ref(fn, f"{what} {arg} hook") for fn in fns)
    told = tuple(_block_ref(b, what) for b in settings.get("notify") or ()) if notify else ()
    return Hooks(**refs, notify=told)


def _block_ref(block: NotificationBlock | str, what: str) -> str:
    if isinstance(block, str):
        kind, _, name = block.partition("/")
        if not kind or not name:
            raise FlowDefinitionError(f"{what} notify: {block!r} is not 'KIND/NAME'")
        return block
    saved = block.block_name
    if saved is None:
        raise FlowDefinitionError(
            f"{what} notify: a {type(block).__name__} must be saved and loaded by name "
            "(its URL or password is a secret, never part of a DAG)"
        )
    return f"{block.kind}/{saved}"
