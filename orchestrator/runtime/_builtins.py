"""Tasks kumoflow itself provides, run by the worker like any task: a gate that chooses a
branch, and the step that hands on the chosen branch's result. The orchestrator reads neither
value; a gate's worker reports its choice with the completion."""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

CHOOSE = "orchestrator.runtime._builtins:choose"
SELECT = "orchestrator.runtime._builtins:select"


def choose(value: Any, mode: str, cases: list[JsonValue], labels: list[str]) -> str:
    """`branch`: 'then' when `value` is truthy, else 'otherwise'. `switch`: the label of the
    first case equal to `value`, else 'default'."""
    if mode == "truthy":
        return labels[0] if value else labels[1]
    for case, label in zip(cases, labels, strict=False):
        if value == case:
            return label
    return "default"


def select(choice: str, options: dict[str, Any]) -> Any:
    """The chosen branch's result; None when the chosen branch returns nothing."""
    return options.get(choice)
