"""Turning values into stored results and expressions back into values."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import JsonValue

from contracts import DictValue, ListValue, LiteralValue, ParamRef, ResultRef, Serializer, ValueExpr
from orchestrator.errors import ParameterError, SerializationError

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
    raise AssertionError(f"unknown expression {expr!r}")
