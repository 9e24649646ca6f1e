"""`kumoflow dlq`: input the functions rejected, with the reason."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

import click

from orchestrator.cli._output import echo, guard
from orchestrator.cli._target import in_process_option, project_option, runs_runtime, target_runtime

if TYPE_CHECKING:
    from orchestrator.local import Publish


@click.group()
def dlq() -> None:
    """Dead letters: input the functions rejected, with the reason."""


@dlq.command("list")
@click.option("--limit", default=100, show_default=True)
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def dlq_list(limit: int, project: str | None, in_process: bool, as_json: bool) -> None:
    """List dead-letter records, newest first."""
    with guard(as_json):
        letters = runs_runtime(project, in_process).letters
        found = [d.model_dump(mode="json") for d in letters.list(limit)]
    human = "\n".join(
        f"{d['received_at']}  {d['source']:<12} "
        + (f"[{d['flow']}] " if d.get("flow") else "")
        + d["reason"]
        for d in found
    )
    echo(found, as_json, human or "no dead letters")


@dlq.command("redrive")
@click.argument("letter_id")
@click.option(
    "--data",
    "data_file",
    type=click.File("rb"),
    default=None,
    help="Publish this file's bytes ('-': stdin) instead of the recorded input (fixed input).",
)
@project_option
@click.option("--json", "as_json", is_flag=True)
def dlq_redrive(
    letter_id: str, data_file: IO[bytes] | None, project: str | None, as_json: bool
) -> None:
    """Publish a dead letter's input again where it arrived, once its cause is fixed (to the
    one flow that refused it, when other flows on its topic took it)."""
    from orchestrator.local import redrive

    with guard(as_json):
        rt = target_runtime(project)
        letter, message_id = redrive(
            rt, letter_id, _publisher(project), data_file.read() if data_file else None
        )
    found = {"id": letter.id, "topic": letter.topic, "message_id": message_id}
    echo(found, as_json, f"published {message_id} to {letter.topic}")


def _publisher(project: str | None) -> Publish:
    if project:
        from orchestrator.cloud import publish_to_project

        return lambda topic, data, attrs: publish_to_project(project, topic, data, attrs)
    from orchestrator.local import publish

    return publish
