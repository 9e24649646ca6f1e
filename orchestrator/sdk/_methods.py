"""Tasks and flows defined as methods: which kind of method a decorator got, and how the DAG
describes the object a method task is called on so that a worker in another process can
rebuild it (the worker's side is `orchestrator.runtime`'s receivers)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from orchestrator.contracts import Receiver
from orchestrator.errors import FlowDefinitionError

Kind = Literal["plain", "class", "static"]


def unwrap(fn: Any) -> tuple[Callable[..., Any], Kind]:
    """The function under `@classmethod` / `@staticmethod` (written below `@task`/`@flow`)."""
    if isinstance(fn, classmethod):
        return fn.__func__, "class"
    if isinstance(fn, staticmethod):
        return fn.__func__, "static"
    return fn, "plain"


def describe(obj: object, what: str, modules: tuple[str, ...]) -> Receiver:
    """How the worker gets `obj` back: a class by name; a pydantic model or dataclass whose
    fields are JSON as that data (so its content is part of the flow's version); any other
    object by its module-level name. Anything else cannot cross to another process."""
    if isinstance(obj, type):
        return Receiver(kind="class", ref=_class_ref(obj, what))
    data = _as_data(obj)
    if data is not None:
        return Receiver(kind="data", ref=_class_ref(type(obj), what), data=data)
    found = _module_level_name(obj, (type(obj).__module__, *modules))
    if found is not None:
        return Receiver(kind="instance", ref=found)
    cls = type(obj).__qualname__
    raise FlowDefinitionError(
        f"{what} is called on a {cls} object that a task worker (another process) cannot "
        f"rebuild. Either make it a module-level instance (`exporter = {cls}(...)` at the top "
        f"of a module, referenced by its import path), or make {cls} a pydantic model or a "
        "dataclass whose fields are JSON values (carried as data in the DAG)"
    )


def _class_ref(cls: type, what: str) -> str:
    if "<locals>" in cls.__qualname__:
        raise FlowDefinitionError(
            f"{what}: class {cls.__qualname__} is defined inside a function; task workers "
            "import it by name in another process, so define it at module level"
        )
    return f"{_importable_name(sys.modules.get(cls.__module__), cls.__module__)}:{cls.__qualname__}"


def _as_data(obj: object) -> Any:
    """The object's fields as JSON, when they validate back into an equal object."""
    if not isinstance(obj, BaseModel) and not (
        dataclasses.is_dataclass(obj) and not isinstance(obj, type)
    ):
        return None
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(type(obj))
        data = adapter.dump_python(obj, mode="json")
        json.dumps(data, allow_nan=False)
        again = adapter.dump_python(adapter.validate_python(data), mode="json")
    except Exception:  # fields JSON cannot carry (or a class pydantic cannot rebuild)
        return None
    return data if again == data else None


def _module_level_name(obj: object, modules: tuple[str, ...]) -> str | None:
    for name in dict.fromkeys((*modules, "__main__")):
        module = sys.modules.get(name)
        if module is None:
            continue
        for attr, value in vars(module).items():
            if value is obj and not attr.startswith("_"):
                return f"{_importable_name(module, name)}:{attr}"
    return None


def _importable_name(module: ModuleType | None, name: str) -> str:
    """A script run directly is `__main__` here; workers import its file by its stem."""
    path = getattr(module, "__file__", None)
    if name == "__main__" and path:
        return Path(path).stem
    return name
