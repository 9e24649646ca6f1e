"""Tasks as methods of a class; the object made inside the flow (the user's report)."""

import csv
import io
from dataclasses import dataclass

from prefect import flow, task


class CsvExporter:
    def __init__(self, delimiter: str = ",") -> None:
        self.delimiter = delimiter

    @task(retries=2)
    def to_csv(self, rows: list[dict]) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=self.delimiter)
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    @task
    def upload(self, csv_text: str, name: str) -> str:
        return f"{name}: {len(csv_text.splitlines())} lines"


@dataclass
class Greeter:
    greeting: str

    @task
    def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}!"


@flow
def export_users(users: list[dict], name: str = "users.csv") -> str:
    # check[change]: CsvExporter(...) made in a flow body (its methods are tasks)
    exporter = CsvExporter(delimiter=";")
    csv_text = exporter.to_csv(users)
    return exporter.upload(csv_text, name)


@flow
def greet_user(name: str) -> str:
    greeter = Greeter(greeting="Hello")
    return greeter.greet(name)
