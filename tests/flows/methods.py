"""Tasks and flows as methods, run loggers, log_prints and the run context, on every backend.

The first flow is the article's shape: tasks defined as methods of a class, called through a
module-level instance, with retries."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestrator import Task, context, flow, get_run_logger, task, task_input_hash
from tests.flows.basic import bump


class CsvExporter:
    """Not a model, not a dataclass: reachable by workers as the module-level `exporter`."""

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter

    @task(name="create-csv-file", retries=3, retry_delay_seconds=1)
    def create_csv_file(self, json_str: str, counter: str, failures: int) -> str:
        attempt = bump(counter)
        run_count = context.task_run.run_count if context.task_run else 0
        with open(counter + ".run_counts", "a") as f:
            f.write(f"{run_count}\n")
        if attempt <= failures:
            raise ConnectionError(f"transient failure {attempt}")
        rows = json.loads(json_str)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=self.delimiter)
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    @task(name="upload-to-gcs", retries=3, retry_delay_seconds=1)
    def upload_to_gcs(self, csv_data: str, bucket_name: str, filename: str) -> str:
        return f"gs://{bucket_name}/{filename} ({len(csv_data.splitlines())} lines)"


exporter = CsvExporter(delimiter=";")


@flow(name="method-sample")
def method_sample(
    json_data: str, counter: str, failures: int = 0, bucket_name: str = "demo"
) -> dict[str, str]:
    csv_data = exporter.create_csv_file(json_data, counter, failures)
    return {"csv": csv_data, "uri": exporter.upload_to_gcs(csv_data, bucket_name, "out.csv")}


class Greeter(BaseModel):
    """A pydantic receiver: carried as data in the DAG. Pydantic takes every non-function
    attribute for a field, so it is told that tasks are not."""

    model_config = ConfigDict(ignored_types=(Task,))
    greeting: str
    punctuation: str = "!"

    @task(name="greet")
    def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}{self.punctuation}"


@dataclass(frozen=True)
class Scaler:
    """A dataclass receiver, mapped and cached like any task."""

    factor: int

    @task(name="scale", cache_key_fn=task_input_hash)
    def scale(self, x: int) -> int:
        return x * self.factor


class Tools:
    @task(name="total")
    @staticmethod
    def total(values: list[int]) -> int:
        return sum(values)

    @task(name="describe")
    @classmethod
    def describe(cls, value: int) -> str:
        return f"{cls.__name__}: {value}"


@flow(name="receivers")
def receivers(name: str, values: list[int]) -> dict[str, Any]:
    scaled = Scaler(factor=10).scale.map(values)
    return {
        "greeting": Greeter(greeting="Hello").greet(name),
        "scaled": scaled,
        "described": Tools.describe(Tools.total(scaled)),
    }


class Pipeline:
    """A flow defined as a method: the body runs with the object when compiled."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    @flow(name="pipeline")
    def run(self, values: list[int]) -> int:
        return Tools.total(Scaler(factor=self.factor).scale.map(values))


pipeline = Pipeline(factor=3)


@task(name="chatty")
def chatty(marker: str) -> dict[str, Any]:
    get_run_logger().info("logged %s", marker)
    print("printed", marker)
    flow_run, task_run = context.flow_run, context.task_run
    assert flow_run is not None
    assert task_run is not None
    return {
        "flow_run": {
            "id": flow_run.id,
            "name": flow_run.name,
            "flow_name": flow_run.flow_name,
            "parameters": dict(flow_run.parameters),
            "trigger": flow_run.trigger.kind,
            "scheduled_start_time": flow_run.scheduled_start_time.isoformat(),
        },
        "task_run": {
            "id": task_run.id,
            "name": task_run.name,
            "task_key": task_run.task_key,
            "run_count": task_run.run_count,
            "parameters": dict(task_run.parameters),
        },
    }


@task(name="quiet", log_prints=False)
def quiet(marker: str) -> str:
    print("not logged", marker)
    return marker


@flow(name="chatty", log_prints=True)
def chatty_flow(marker: str) -> dict[str, Any]:
    quiet(marker)
    return chatty(marker)
