"""Tasks defined as methods: rebuilding the object a method is called on, in the worker.

The DAG says how (contracts `Receiver`): a module-level instance or a class is imported by
name, a pydantic model or dataclass is validated back from the JSON fields the DAG carries.
"""

from __future__ import annotations

import importlib
import json
import types
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from orchestrator.contracts import Receiver, SourceRef
from orchestrator.errors import BadInputError
from orchestrator.runtime._runtime import import_source


def bind_receiver(
    fn: Callable[..., Any], receiver: Receiver | None, source: SourceRef
) -> Callable[..., Any]:
    """`fn` bound to its rebuilt object (a bound method: signatures then skip `self`)."""
    if receiver is None:
        return fn
    return types.MethodType(fn, rebuild(receiver, source))


def rebuild(receiver: Receiver, source: SourceRef) -> object:
    module_name, _, qualname = receiver.ref.partition(":")
    if module_name == source.module:
        import_source(source)
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as e:
        raise BadInputError(f"cannot find the method's object {receiver.ref!r}: {e}") from e
    if receiver.kind != "data":
        return found
    try:
        return TypeAdapter(found).validate_python(receiver.data)
    except ValidationError as e:
        raise BadInputError(
            f"the method's object ({receiver.ref}) no longer fits the fields the flow was "
            f"compiled with: {e}"
        ) from e


def receiver_key(receiver: Receiver | None) -> str | None:
    """The object's identity in a cache key: a method's result depends on its object too."""
    if receiver is None:
        return None
    return json.dumps(receiver.model_dump(mode="json"), sort_keys=True)
