"""Compiling flow bodies into FlowSpecs, and every definition-time misuse's message."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import (
    FlowDefinitionError,
    GcsObject,
    flow,
    on_gcs_finalize,
    on_schedule,
    task,
    unmapped,
)
from orchestrator.contracts import (
    FlowSpec,
    ListValue,
    LiteralValue,
    ParamRef,
    PathValue,
    ResultRef,
    flow_version,
)
from tests.flows.misuse import add, emit


def compile_body(body: object, name: str = "f") -> FlowSpec:
    """Compile a flow body (flow bodies, unlike tasks, need not be module-level)."""
    f = flow(name=name)(body)  # type: ignore[call-overload]
    return f.spec  # type: ignore[no-any-return]


def test_passing_a_result_makes_an_edge_and_keys_are_deterministic() -> None:
    def body(x: int) -> int:
        return add(add(add(x)), y=add(5))

    spec = compile_body(body)
    keys = [n.key for n in spec.nodes]
    assert keys == ["add", "add-2", "add-3", "add-4"]
    assert spec.nodes[0].args == {"x": ParamRef(name="x")}
    assert spec.nodes[3].args == {"x": ResultRef(node="add-2"), "y": ResultRef(node="add-3")}
    assert spec.result == ResultRef(node="add-4")
    assert flow_version(spec) == flow_version(compile_body(body))


def test_prefect_futures_compile_to_the_same_dag() -> None:
    def prefect_style(x: int) -> int:
        a = add.submit(x)
        b = add.submit(a.result(), y=add(5).wait())
        return b.result(raise_on_failure=True)  # type: ignore[no-any-return]

    def plain(x: int) -> int:
        return add(add(x), y=add(5))

    assert compile_body(prefect_style).nodes == compile_body(plain).nodes
    with pytest.raises(FlowDefinitionError, match=r"add.submit\(\.\.\.\) can only be used"):
        add.submit(1)


def test_projections_compile_to_paths() -> None:
    def body(obj: dict[str, object]) -> int:
        return add(obj["size"], y=add(1).count)

    spec = compile_body(body)
    assert spec.nodes[1].args == {
        "x": PathValue(of=ParamRef(name="obj"), path=("size",)),
        "y": PathValue(of=ResultRef(node="add"), path=("count",)),
    }


def test_keys_stay_stable_when_other_tasks_change() -> None:
    def before(p: str) -> str:
        add(1)
        return emit(p)

    def after(p: str) -> str:
        add(1)
        add(2)
        emit("x")
        return emit(p)

    assert [n.key for n in compile_body(before).nodes] == ["add", "emit"]
    assert [n.key for n in compile_body(after).nodes] == ["add", "add-2", "emit", "emit-2"]


def test_wait_for_map_unmapped_and_structured_results() -> None:
    def body(items: list[int]) -> dict[str, object]:
        first = emit("a")
        mapped = add.map(items, y=unmapped(3), wait_for=[first])
        return {"mapped": mapped, "fixed": [1, first]}

    spec = compile_body(body)
    node = spec.nodes[1]
    assert node.map_over == ("x",)
    assert node.args["y"] == LiteralValue(value=3)
    assert node.wait_for == ("emit",)
    assert spec.result.kind == "dict"
    fixed = spec.result.items["fixed"]  # type: ignore[union-attr]
    assert fixed == ListValue(items=(LiteralValue(value=1), ResultRef(node="emit")))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            lambda x: add(1) if x else 0,
            r"parameter 'x' is only known when the flow runs, so "
            r"`if/while/and/or/not`.*use branch\(predicate, then=\.\.\., otherwise=\.\.\.\)"
            r".*Move that logic into a @task",
        ),
        (lambda x: [add(i) for i in add(x)], r"result of task 'add'.*`for/unpacking`"),
        (lambda x: add(x) + 1, r"`\+` cannot use it"),
        (lambda x: add(str(x)), r"`str\(\)`"),
        (lambda x: add(f"{x}"), r"f-string"),
        (lambda x: add(x)[1:2], r"`\[\.\.\.\] with anything but a key or an index`"),
        (lambda x: add(x).upper(), r"'add'\.upper is only known .*`calling it \(a projection"),
        (lambda x: add(x, z=1), r"task 'add' in flow 'f': got an unexpected keyword argument 'z'"),
        (lambda x: add(), r"task 'add' in flow 'f': missing a required argument: 'x'"),
        (
            lambda x: add(object()),
            r"argument 'x' of task 'add' is a object, which JSON cannot carry",
        ),
        (lambda x: add.map(5), r"add.map\(\.\.\.\) got nothing to map over"),
        (
            lambda x: add.map(add.map([x])[0]),
            r"cannot map over .*: a part of a mapped result is one child's value",
        ),
        (lambda x: add(x, wait_for=[3]), r"wait_for of task 'add' takes task results only"),
    ],
)
def test_definition_time_misuse_gets_a_clear_message(body: object, message: str) -> None:
    def named(x: int) -> object:
        return body(x)  # type: ignore[operator]

    with pytest.raises(FlowDefinitionError, match=message):
        compile_body(named)


def test_lambda_and_nested_tasks_are_rejected() -> None:
    with pytest.raises(FlowDefinitionError, match="must be a module-level function"):
        task(lambda x: x)

    def nested(x: int) -> int:
        return x

    with pytest.raises(FlowDefinitionError, match=r"nested.*must be a module-level function"):
        task(nested)


def test_flow_parameters_must_be_json_and_named() -> None:
    def bad_default(x: object = object()) -> None:
        return None

    with pytest.raises(FlowDefinitionError, match="default of parameter 'x' is a object"):
        compile_body(bad_default)

    def star(*xs: int) -> None:
        return None

    with pytest.raises(FlowDefinitionError, match="parameter 'xs' must be a plain named parameter"):
        compile_body(star)


def test_async_flow_body_and_subflows_are_refused() -> None:
    async def body() -> None:
        return None

    with pytest.raises(FlowDefinitionError, match="plain `def`"):
        flow(body)


def test_retry_options_validate() -> None:
    with pytest.raises(FlowDefinitionError, match="retry delays must be >= 0"):
        task(retry_delay_seconds=[-1])(add.fn)
    assert task(retries=3, retry_delay_seconds=lambda n: [1.0] * n)(
        add.fn
    ).options.retry.delay_seconds == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        (
            lambda: on_schedule(cron="61 * * * *"),
            r"cron expression '61 \* \* \* \*' does not parse",
        ),
        (lambda: on_schedule(cron="0 3 * * *", timezone="Mars/Olympus"), "unknown time zone"),
        (lambda: on_schedule(cron="0 3 * * *", params={"nope": 1}), r"params \['nope'\]"),
        (lambda: on_gcs_finalize(bucket="inbox"), "annotate one as GcsObject"),
        (lambda: "daily", "triggers take on_gcs_finalize"),
    ],
)
def test_trigger_misuse_fails_at_definition(trigger: Any, message: str) -> None:
    def body(x: int = 1) -> None:
        return None

    with pytest.raises(FlowDefinitionError, match=message):
        _ = flow(name="f", triggers=[trigger()])(body).spec


def test_triggers_compile_into_the_spec() -> None:
    def body(obj: GcsObject | None = None, mode: str = "event") -> None:
        return None

    spec = flow(
        name="f",
        triggers=[
            on_gcs_finalize(bucket="inbox", prefix="in/", glob="in/*.json"),
            on_schedule(cron="0 3 * * *", timezone="Asia/Tokyo", params={"mode": "nightly"}),
        ],
    )(body).spec
    gcs, schedule = spec.triggers
    assert gcs.kind == "gcs"
    assert gcs.param == "obj"
    assert schedule.kind == "schedule"
    assert schedule.params == {"mode": "nightly"}
