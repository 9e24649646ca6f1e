"""Methods as tasks and flows at definition time, the run logger outside runs, log_prints and
the run context where no run is current."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator import (
    FlowDefinitionError,
    Task,
    context,
    flow,
    get_run_logger,
    run_in_process,
    task,
)
from orchestrator.contracts import FlowSpec, Receiver, flow_version
from orchestrator.runtime import JsonFormatter
from tests.flows.methods import CsvExporter, Greeter, Scaler, Tools, exporter, pipeline

ROOT = Path(__file__).resolve().parents[2]


def compile_body(body: object, name: str = "f") -> FlowSpec:
    return flow(name=name)(body).spec  # type: ignore[call-overload, no-any-return]


def test_a_method_called_through_an_instance_is_not_given_the_instance_as_an_argument() -> None:
    def body(data: str) -> str:
        return exporter.create_csv_file(data, "counter", 0)  # type: ignore[no-any-return]

    (node,) = compile_body(body).nodes
    assert set(node.args) == {"json_str", "counter", "failures"}
    assert node.task == "tests.flows.methods:CsvExporter.create_csv_file"
    assert node.receiver == Receiver(kind="instance", ref="tests.flows.methods:exporter")
    assert node.options.retry.retries == 3

    def missing(data: str) -> str:
        return exporter.upload_to_gcs(data, "bucket")  # type: ignore[call-arg, no-any-return]

    # The first version reported "missing a required argument: 'json_str'" for any method.
    with pytest.raises(FlowDefinitionError, match="missing a required argument: 'filename'"):
        compile_body(missing)


def test_a_models_fields_are_part_of_the_flows_version() -> None:
    def hello(name: str) -> str:
        return Greeter(greeting="Hello").greet(name)  # type: ignore[no-any-return]

    def hi(name: str) -> str:
        return Greeter(greeting="Hi").greet(name)  # type: ignore[no-any-return]

    (node,) = compile_body(hello).nodes
    assert node.receiver == Receiver(
        kind="data",
        ref="tests.flows.methods:Greeter",
        data={"greeting": "Hello", "punctuation": "!"},
    )
    assert flow_version(compile_body(hello)) == flow_version(compile_body(hello))
    assert flow_version(compile_body(hello)) != flow_version(compile_body(hi))


def test_class_and_static_methods() -> None:
    def body(values: list[int]) -> str:
        return Tools.describe(Tools.total(values))  # type: ignore[call-arg, arg-type, no-any-return]

    total, describe = compile_body(body).nodes
    assert total.receiver is None
    assert describe.receiver == Receiver(kind="class", ref="tests.flows.methods:Tools")
    # Outside a flow they are their methods.
    assert Tools.describe(3) == "Tools: 3"  # type: ignore[call-arg, arg-type]
    assert Tools.total([1, 2]) == 3
    assert Scaler(2).scale(4) == 8
    assert exporter.upload_to_gcs("a\nb", "b", "f") == "gs://b/f (2 lines)"


class Opaque:
    def __init__(self, conn: object) -> None:
        self.conn = conn

    @task(name="query")
    def query(self, sql: str) -> str:
        return sql


@dataclass
class HoldsALock:
    lock: Any

    @task(name="locked")
    def locked(self) -> int:
        return 1


def test_an_object_a_worker_cannot_rebuild_is_refused_when_the_flow_is_defined() -> None:
    local = Opaque(conn=threading.Lock())  # not module-level, not data

    def body() -> str:
        return local.query("select 1")  # type: ignore[no-any-return]

    with pytest.raises(FlowDefinitionError) as e:
        compile_body(body)
    assert str(e.value) == (
        "task 'query' (a method of Opaque) is called on a Opaque object that a task worker "
        "(another process) cannot rebuild. Either make it a module-level instance (`exporter "
        "= Opaque(...)` at the top of a module, referenced by its import path), or make Opaque "
        "a pydantic model or a dataclass whose fields are JSON values (carried as data in the "
        "DAG)"
    )

    held = HoldsALock(threading.Lock())  # a dataclass, but its field is not JSON

    def body2() -> int:
        return held.locked()  # type: ignore[no-any-return]

    with pytest.raises(FlowDefinitionError, match="make HoldsALock a pydantic model or a"):
        compile_body(body2)


def test_a_class_defined_in_a_function_is_refused() -> None:
    with pytest.raises(FlowDefinitionError, match=r"\(or a method of a module-level class\)"):

        class Local:
            @task(name="local")
            def run(self) -> int:
                return 1

    class LocalGreeter(Greeter):  # its task is module-level, its class is not
        pass

    def body() -> str:
        return LocalGreeter(greeting="x").greet("y")  # type: ignore[no-any-return]

    with pytest.raises(FlowDefinitionError, match="LocalGreeter is defined inside a function"):
        compile_body(body)


def test_with_options_keeps_the_binding_and_map_carries_the_receiver() -> None:
    def body(values: list[int]) -> list[int]:
        return Scaler(5).scale.with_options(name="times-five").map(values)  # type: ignore[no-any-return]

    (node,) = compile_body(body).nodes
    assert node.key == "times-five"
    assert node.map_over == ("x",)
    assert node.receiver == Receiver(
        kind="data", ref="tests.flows.methods:Scaler", data={"factor": 5}
    )


@flow(name="scaled")
def scaled_by_2(x: int) -> int:
    return Scaler(2).scale(x)  # type: ignore[no-any-return]


@flow(name="scaled")
def scaled_by_3(x: int) -> int:
    return Scaler(3).scale(x)  # type: ignore[no-any-return]


def test_a_cached_methods_key_includes_its_object() -> None:
    # Same task, same arguments, another object: the cached result of the first is not reused.
    assert run_in_process(scaled_by_2, {"x": 7}).value == 14
    assert run_in_process(scaled_by_3, {"x": 7}).value == 21
    assert run_in_process(scaled_by_2, {"x": 7}).value == 14


def test_a_flow_method_is_bound_to_its_object() -> None:
    assert [p.name for p in pipeline.run.spec.params] == ["values"]
    assert pipeline.run([1, 2]) == 9
    assert type(pipeline).run is not pipeline.run  # unbound on the class


def test_the_run_context_is_empty_outside_a_run_and_refused_in_a_flow_body() -> None:
    assert not context.flow_run
    assert context.flow_run.get() is None
    assert not context.task_run
    assert context.task_run.get() is None

    def body(x: int) -> int:
        return context.flow_run.id  # type: ignore[union-attr, return-value]

    with pytest.raises(FlowDefinitionError, match=r"context.flow_run read in the body of flow 'f'"):
        compile_body(body)


def test_get_run_logger_outside_a_run_warns_once() -> None:
    # A fresh process: whether this one already warned depends on which tests ran before.
    script = (
        "import logging; from orchestrator import get_run_logger\n"
        "first, second = get_run_logger(), get_run_logger()\n"
        "assert first is second is logging.getLogger('kumoflow.run')\n"
        "first.info('plain %s', 'record')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stderr.count("get_run_logger() called outside a flow run or task") == 1
    assert done.stderr.endswith("| INFO    | plain record\n")


def test_a_flow_body_logs_and_prints_with_the_flows_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logging.getLogger("kumoflow.run").addHandler(handler)
    try:

        @flow(name="talkative", log_prints=True)
        def talkative(x: int) -> int:
            get_run_logger().info("compiling")
            print("printed", "while", "compiling", sep="-")
            print("to stderr", file=sys.stderr)
            return Tools.total([x])  # type: ignore[no-any-return]

        _ = talkative.spec
        print("after compiling")
    finally:
        logging.getLogger("kumoflow.run").removeHandler(handler)
    assert [(r.getMessage(), getattr(r, "flow", None)) for r in records] == [
        ("compiling", "talkative"),
        ("printed-while-compiling", "talkative"),
    ]
    captured = capsys.readouterr()
    assert captured.err == "to stderr\n"  # print(file=...) keeps its file
    assert captured.out == "after compiling\n"  # outside the body, print is print


def test_json_entries_carry_the_ids_and_labels() -> None:
    record = logging.LogRecord("kumoflow.run", logging.INFO, "f.py", 1, "hi %s", ("x",), None)
    record.__dict__.update(run_id="r1", flow="f", task="t", task_name="t", attempt=2)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hi x"
    assert (entry["run_id"], entry["task"], entry["attempt"]) == ("r1", "t", 2)
    assert entry["logging.googleapis.com/labels"] == {"run_id": "r1", "flow": "f", "task": "t"}


def test_a_module_level_instance_is_referenced_by_name() -> None:
    assert isinstance(CsvExporter.__dict__["create_csv_file"], Task)
    assert CsvExporter.create_csv_file is CsvExporter.__dict__["create_csv_file"]


def test_a_flow_method_loads_from_a_cli_target() -> None:
    from orchestrator.sdk import load_flow

    loaded = load_flow("tests.flows.methods:pipeline.run")
    assert loaded.name == "pipeline"
    assert loaded([1, 2]) == 9
