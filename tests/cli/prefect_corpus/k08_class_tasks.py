"""p08 converted: the exporter is a module-level instance (the dataclass one was fine)."""

import csv
import io

from orchestrator import flow, task


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


exporter = CsvExporter(delimiter=";")


@flow
def export_users(users: list[dict], name: str = "users.csv") -> str:
    csv_text = exporter.to_csv(users)
    return exporter.upload(csv_text, name)
