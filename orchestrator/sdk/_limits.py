"""Concurrency limits declared with the flows: `limits = Limits({"bigquery": 20})` in a file
that `kumoflow deploy` deploys sets each key's limit on the target (the stack's store, or the
project's through Terraform's `concurrency_limits` and the apply), as `kumoflow limits set`
would. Limits are data, not code: a flow's version does not change with them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydantic import TypeAdapter, ValidationError

from orchestrator.contracts import LimitKey
from orchestrator.errors import FlowDefinitionError

_KEY: TypeAdapter[str] = TypeAdapter(LimitKey)


@dataclass(frozen=True)
class Limits:
    """Concurrency key -> how many attempts of it may run at once (a whole number >= 1)."""

    values: Mapping[str, int]

    def __init__(self, values: Mapping[str, int]) -> None:
        checked: dict[str, int] = {}
        for key, limit in values.items():
            try:
                _KEY.validate_python(key)
            except ValidationError:
                raise FlowDefinitionError(
                    f"Limits: {key!r} is no concurrency key (1-100 letters, digits or . _ : -,"
                    " starting with a letter or digit)"
                ) from None
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise FlowDefinitionError(
                    f"Limits: the limit of {key!r} must be a whole number >= 1, not {limit!r}"
                )
            checked[key] = limit
        object.__setattr__(self, "values", MappingProxyType(checked))


def merged_limits(found: Iterable[Limits]) -> dict[str, int]:
    """The limits of every declaration deployed together; a key declared twice with two
    limits is refused (which one would the project get?)."""
    out: dict[str, int] = {}
    for limits in found:
        for key, limit in limits.values.items():
            if out.setdefault(key, limit) != limit:
                raise FlowDefinitionError(
                    f"Limits: {key!r} is declared with {out[key]} and with {limit}; declare it once"
                )
    return dict(sorted(out.items()))
