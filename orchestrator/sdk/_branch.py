"""`branch` and `switch`: choose at run time which part of the DAG runs.

The predicate (or value) is a placeholder. Each branch is a zero-argument function traced like
the flow body; its tasks are skipped when the gate chooses another branch. The call returns a
placeholder for the taken branch's result (None when no branch is taken)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.contracts import ResultRef, TaskOptions
from orchestrator.errors import FlowDefinitionError
from orchestrator.runtime import CHOOSE, SELECT, choose, select
from orchestrator.sdk._compile import BUILDING, Placeholder, Untaken, to_expr

Branch = Callable[[], Any]


def branch(predicate: Any, *, then: Branch, otherwise: Branch | None = None) -> Any:
    """Run `then()`'s tasks when `predicate` is truthy at run time, else `otherwise()`'s."""
    return _gate("branch", predicate, "truthy", [], [("then", then), ("otherwise", otherwise)])


def switch(value: Any, cases: Mapping[Any, Branch], *, default: Branch | None = None) -> Any:
    """Run the tasks of the case equal to `value` at run time (cases are JSON values), else
    `default()`'s."""
    keys = list(cases)
    to_expr(keys, what="the cases of switch(...)")  # JSON keys only, with a clear error
    labels = [(f"case-{i}", fn) for i, fn in enumerate(cases.values())]
    return _gate("switch", value, "equal", keys, [*labels, ("default", default)])


def _gate(
    kind: str, value: Any, mode: str, cases: list[Any], branches: list[tuple[str, Branch | None]]
) -> Any:
    builder = BUILDING.get()
    if builder is None:
        raise FlowDefinitionError(f"{kind}(...) can only be used inside a @flow")
    if not isinstance(value, Placeholder) or value._mapped:
        raise FlowDefinitionError(
            f"{kind}(...) chooses on a value known only when the flow runs (a parameter or a "
            "task's result, not a mapped one); for a value known now, use a plain if"
        )
    labels = [label for label, _ in branches]
    # The gate's result is its choice, in JSON; where results live is the flow's.
    options = builder.inherit(TaskOptions(name=kind), keep=("result_serializer",))
    gate = builder.add(
        CHOOSE, choose, options, (value, mode, cases, labels), {}, mapped=False,
        branches=tuple(labels),
    )  # fmt: skip
    assert isinstance(gate._expr, ResultRef)
    results: dict[str, Any] = {}
    for label, fn in branches:
        if fn is None:
            continue
        builder.gates.append((gate._expr.node, label))
        try:
            results[label] = fn()
        finally:
            builder.gates.pop()
    return builder.add(
        SELECT, select, builder.inherit(TaskOptions(name=f"{kind}-result")),
        (gate, Untaken(results)), {}, mapped=False,
    )  # fmt: skip
