"""Turning values into stored results and expressions back into values."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import JsonValue

from orchestrator.contracts import (
    DictValue,
    ListValue,
    LiteralValue,
    ParamRef,
    PathValue,
    ResultRef,
    Serializer,
    ValueExpr,
)
from orchestrator.errors import ParameterError, ProjectionError, SerializationError

JSON_TYPE = "application/json"
PICKLE_TYPE = "application/x-python-pickle"


def encode(value: object, serializer: Serializer, *, what: str) -> tuple[bytes, str, str]:
    """(bytes, content type, extension) for a result; JSON unless the task opted into pickle."""
    if serializer == "pickle":
        try:
            return pickle.dumps(value), PICKLE_TYPE, "pickle"
        except Exception as e:
            raise SerializationError(f"{what} cannot be pickled: {e}") from e
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode(), JSON_TYPE, "json"
    except (TypeError, ValueError) as e:
        raise SerializationError(
            f"{what} returned a {type(value).__name__}, which JSON cannot carry ({e}); return "
            "JSON values (str, int, float, bool, None, list, dict) or set "
            'result_serializer="pickle"'
        ) from e


def decode(data: bytes, serializer: Serializer) -> Any:
    """A stored result back to a value. The serializer comes from the plan (the task's own
    option), never from the wire or an object's name: pickle is read only for tasks that opted
    in, from the locations the run itself derives."""
    if serializer == "pickle":
        return pickle.loads(data)
    return json.loads(data)


def param_value(raw: str, annotation: str | None) -> Any:
    """A parameter given as text (CLI, message attribute): JSON when it parses, else the text;
    always the text for parameters annotated `str`."""
    if annotation == "str":
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def check_json(value: object, *, what: str) -> JsonValue:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ParameterError(
            f"{what} is a {type(value).__name__}, which JSON cannot carry ({e}); flow parameters "
            "cross the wire as JSON: pass str, int, float, bool, None, list or dict values"
        ) from e
    return value  # type: ignore[return-value]


def resolve(
    expr: ValueExpr,
    params: Mapping[str, JsonValue],
    members: Mapping[str, tuple[str, ...]],
    load: Callable[[str], Any],
) -> Any:
    """The value of an expression; `load(task_key)` fetches one task's result."""
    match expr:
        case LiteralValue(value=value):
            return value
        case ParamRef(name=name):
            return params.get(name)
        case ResultRef(node=node):
            keys = members.get(node, (node,))
            return load(node) if keys == (node,) else [load(k) for k in keys]
        case ListValue(items=items):
            return [resolve(i, params, members, load) for i in items]
        case DictValue(items=items):
            return {k: resolve(v, params, members, load) for k, v in items.items()}
        case PathValue(of=of, path=path):
            return project(resolve(of, params, members, load), of, path)
    raise AssertionError(f"unknown expression {expr!r}")


def project(value: Any, of: ValueExpr, path: tuple[str | int, ...]) -> Any:
    """Walk `path` into `value`: keys of dicts, indexes of lists, attributes of objects."""
    for i, step in enumerate(path):
        try:
            value = _step(value, step)
        except (KeyError, IndexError, AttributeError, TypeError) as e:
            raise ProjectionError(
                f"{path_text(of, path)} does not resolve on {producer(of)}: at "
                f"{path_text(of, path[: i + 1])}, {_why(value, step)}"
            ) from e
    return value


def _step(value: Any, step: str | int) -> Any:
    if isinstance(value, dict):
        return value[step]
    if isinstance(value, list | tuple):
        if not isinstance(step, int):
            raise TypeError(step)
        return value[step]
    if isinstance(step, str) and not step.startswith("_") and not isinstance(value, _PLAIN):
        return getattr(value, step)  # a model or an object a pickled result holds
    raise TypeError(step)


_PLAIN = (str, int, float, bool, type(None))  # JSON leaves: no attributes to project


def path_text(of: ValueExpr, path: tuple[str | int, ...]) -> str:
    """How the flow body wrote it: `result`, `obj.bucket`, `res["items"][0]`."""
    base = "value"
    if isinstance(of, ParamRef):
        base = of.name
    elif isinstance(of, ResultRef):
        base = "result"
    return base + "".join(_step_text(step) for step in path)


def _step_text(step: str | int) -> str:
    if isinstance(step, int):
        return f"[{step}]"
    return f".{step}" if step.isidentifier() else f"[{step!r}]"


def producer(of: ValueExpr) -> str:
    match of:
        case ResultRef(node=node):
            return f"the result of task {node!r}"
        case ParamRef(name=name):
            return f"parameter {name!r}"
    return "the value"


def _why(value: Any, step: str | int) -> str:
    if isinstance(value, dict):
        keys = ", ".join(map(repr, list(value)[:10])) or "none"
        return f"a dict with no key {step!r} (its keys: {keys})"
    if isinstance(value, list | tuple) and isinstance(step, int):
        return f"index {step} is out of range for a list of {len(value)}"
    what = "attribute" if isinstance(step, str) else "item"
    return f"a {type(value).__name__} has no {what} {step!r}"
