"""Projections resolved on plain values: dicts, lists and objects, with errors that say where."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.contracts import GcsObject, ParamRef, PathValue, ResultRef
from orchestrator.engine import resolve
from orchestrator.errors import ProjectionError

LISTING = {"items": [{"name": "a", "meta": {"size": 3}}], "count": 1}


def _resolve(expr: Any, results: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
    return resolve(expr, params or {}, {}, results.__getitem__)


def test_dict_keys_list_indexes_and_object_attributes() -> None:
    expr = PathValue(of=ResultRef(node="ls"), path=("items", 0, "meta", "size"))
    assert _resolve(expr, {"ls": LISTING}) == 3
    assert (
        _resolve(PathValue(of=ResultRef(node="ls"), path=("items", -1, "name")), {"ls": LISTING})
        == "a"
    )
    obj = GcsObject(bucket="b", name="n", generation=1)
    assert _resolve(PathValue(of=ResultRef(node="o"), path=("bucket",)), {"o": obj}) == "b"
    params = {"obj": {"bucket": "b", "name": "n"}}
    assert _resolve(PathValue(of=ParamRef(name="obj"), path=("name",)), {}, params) == "n"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("missing",), "result.missing does not resolve on the result of task 'ls': at "
         "result.missing, a dict with no key 'missing' (its keys: 'items', 'count')"),
        (("items", 3), "at result.items[3], index 3 is out of range for a list of 1"),
        (("items", "x"), "at result.items.x, a list has no attribute 'x'"),
        (("count", "real"), "at result.count.real, a int has no attribute 'real'"),
        (("count", "__class__"), "at result.count.__class__, a int has no attribute '__class__'"),
        (("items", 0, "name", 0, "upper"), "at result.items[0].name[0], a str has no item 0"),
    ],
)  # fmt: skip
def test_a_path_that_does_not_resolve_names_itself_and_the_producer(
    path: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(ProjectionError) as raised:
        _resolve(PathValue(of=ResultRef(node="ls"), path=path), {"ls": LISTING})
    assert message in str(raised.value)
