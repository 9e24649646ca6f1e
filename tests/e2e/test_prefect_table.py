"""The Prefect feature table (docs/howto/migrate-prefect.md) stays true: every row marked
"same" runs as one small
flow (tests/flows/prefect_features.py) on every backend, and every such flow has its row."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import RunStatus
from tests.flows import prefect_features as pf
from tests.flows import subflows

TABLE = Path(__file__).resolve().parents[2] / "docs" / "howto" / "migrate-prefect.md"
VERDICTS = {"same", "different", "not supported"}


def table() -> dict[str, str]:
    """Row (the Prefect column) -> verdict, from between the page's markers."""
    text = TABLE.read_text()
    body = text.split("<!-- prefect-features:start -->")[1].split("<!-- prefect-features:end -->")[
        0
    ]
    rows = {}
    for line in body.strip().splitlines()[2:]:  # past the header and its rule
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1]
    return rows


@dataclass
class Case:
    flow: Any
    params: Callable[[Path], dict[str, Any]]
    check: Callable[[Any, Path], None]


def _value(expected: object) -> Callable[[Any, Path], None]:
    def check(out: Any, _: Path) -> None:
        assert out.value == expected

    return check


def _counted(expected: object, calls: int) -> Callable[[Any, Path], None]:
    def check(out: Any, tmp: Path) -> None:
        assert out.value == expected
        assert (tmp / "counter").stat().st_size == calls

    return check


def _flow_retried(out: Any, tmp: Path) -> None:
    assert out.value == 2
    assert out.run.attempt == 2


def _ordered(out: Any, tmp: Path) -> None:
    assert out.value == "b"
    assert (tmp / "counter").read_text() == "ab"


def _timed_out(out: Any, _: Path) -> None:
    assert out.value == "timed out"
    error = out.tasks["too_slow"].error
    assert error is not None
    assert error.type == "TimeoutError"


def _logged(out: Any, _: Path) -> None:
    assert out.value == 3  # the records themselves: tests/e2e/test_methods.py


def _fresh(tmp: Path) -> int:
    """An argument no earlier run cached (caches outlive runs: the process's, the bucket's)."""
    return int(hashlib.sha256(str(tmp).encode()).hexdigest()[:8], 16)


def _cached(out: Any, tmp: Path) -> None:
    x = out.run.params["x"]
    assert out.value == [x * x, x * x]
    assert (tmp / "counter").stat().st_size == 1  # the second call reused the first's result


def _stored_by_the_flow(out: Any, _: Path) -> None:
    assert out.value == 2
    where = f"gs://kumoflow-results/prefect-features/runs/{out.run.run_id}/stored.json"
    assert out.run.result_uri == where  # the task's result, where its flow keeps results


def _counter(tmp: Path) -> dict[str, Any]:
    return {"counter": str(tmp / "counter")}


CASES: dict[str, Case] = {
    "`@flow`, `@task`, calling a flow to run it": Case(
        pf.decorators, lambda _: {"x": 1}, _value(12)
    ),
    "`retries`, `retry_delay_seconds`, `exponential_backoff`": Case(
        pf.retries, _counter, _counted(3, 3)
    ),
    "flow `retries`": Case(pf.flow_retries, _counter, _flow_retried),
    "`task.submit(...)`, `.result()`, `.wait()`": Case(pf.futures, lambda _: {"x": 1}, _value(8)),
    "subflows (a flow calling a flow)": Case(
        subflows.with_subflow, lambda _: {"n": 4}, _value({"child": 5, "doubled": 10})
    ),
    "`task.map(...)`, `unmapped(...)`": Case(
        pf.mapping, lambda _: {"xs": [1, 2, 3], "y": 10}, _value([11, 12, 13])
    ),
    "`allow_failure(...)`": Case(
        pf.allowed_failure, lambda _: {"x": 1}, _value("cleaned up after a failure")
    ),
    "`wait_for=[...]`": Case(pf.ordering, _counter, _ordered),
    "`cache_key_fn=task_input_hash`, `cache_expiration`": Case(
        pf.caching, lambda tmp: {"x": _fresh(tmp), **_counter(tmp)}, _cached
    ),
    "task `timeout_seconds`": Case(pf.timeouts, lambda _: {}, _timed_out),
    "`task.with_options(...)`": Case(pf.options, lambda _: {"x": 1}, _value(3)),
    "`async def` tasks": Case(pf.async_tasks, lambda _: {"x": 1}, _value(2)),
    "tasks as methods (instance, class, static)": Case(
        pf.methods,
        lambda tmp: {"json_data": json.dumps([{"a": 1}]), **_counter(tmp)},
        _value({"csv": "a\r\n1\r\n", "scaled": [2, 4], "total": 6, "described": "Tools: 1"}),
    ),
    "`get_run_logger()` in tasks": Case(pf.run_logger, lambda _: {"x": 3}, _logged),
    "`log_prints=True`": Case(pf.printing, lambda _: {"x": 3}, _logged),
    "`prefect.runtime.task_run` (`name`, `run_count`, `parameters`)": Case(
        pf.runtime_context,
        _counter,
        lambda out, tmp: _value(
            {"name": "whoami", "run_count": 2, "counter": str(tmp / "counter")}
        )(out, tmp),
    ),
    "`result_storage`, `persist_result`, `result_serializer` on `@flow` reach its tasks": Case(
        pf.inherited_storage, lambda _: {"x": 1}, _stored_by_the_flow
    ),
}


def test_the_table_is_well_formed_and_every_same_row_has_a_flow() -> None:
    rows = table()
    assert set(rows.values()) <= VERDICTS, rows
    assert sorted(r for r, v in rows.items() if v == "same") == sorted(CASES)


@pytest.mark.parametrize("row", sorted(CASES))
def test_same_as_prefect(backend: Any, row: str, tmp_path: Path) -> None:
    case = CASES[row]
    out = backend.run(case.flow, case.params(tmp_path))
    assert out.status is RunStatus.SUCCEEDED, (row, out.run.error)
    case.check(out, tmp_path)


def test_row_names_are_what_the_readme_says() -> None:
    # A guard on the parser: a row with a pipe in it would split into the wrong cells.
    assert all(re.fullmatch(r"[^|]+", row) for row in table())
