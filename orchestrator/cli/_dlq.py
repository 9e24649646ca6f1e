"""`kumoflow dlq`: input the functions rejected, with the reason."""

from __future__ import annotations

import click

from orchestrator.cli._output import echo, guard


@click.group()
def dlq() -> None:
    """Dead letters: input the functions rejected, with the reason."""


@dlq.command("list")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def dlq_list(limit: int, as_json: bool) -> None:
    """List dead-letter records, newest first."""
    from orchestrator.local import stack_runtime

    with guard(as_json):
        found = [d.model_dump(mode="json") for d in stack_runtime().letters.list(limit)]
    human = "\n".join(f"{d['received_at']}  {d['source']:<12} {d['reason']}" for d in found)
    echo(found, as_json, human or "no dead letters")
