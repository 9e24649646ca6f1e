"""`kumoflow dlq`: input the functions rejected, with the reason."""

from __future__ import annotations

import click

from orchestrator.cli._output import echo, guard
from orchestrator.cli._target import project_option, target_runtime


@click.group()
def dlq() -> None:
    """Dead letters: input the functions rejected, with the reason."""


@dlq.command("list")
@click.option("--limit", default=100, show_default=True)
@project_option
@click.option("--json", "as_json", is_flag=True)
def dlq_list(limit: int, project: str | None, as_json: bool) -> None:
    """List dead-letter records, newest first."""
    with guard(as_json):
        found = [d.model_dump(mode="json") for d in target_runtime(project).letters.list(limit)]
    human = "\n".join(f"{d['received_at']}  {d['source']:<12} {d['reason']}" for d in found)
    echo(found, as_json, human or "no dead letters")
