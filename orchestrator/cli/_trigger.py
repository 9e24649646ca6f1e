"""`kumoflow trigger`: fire triggers by hand on the local stack."""

from __future__ import annotations

import click

from orchestrator.cli._output import echo, guard
from orchestrator.cli._target import project_option


@click.group()
def trigger() -> None:
    """Fire triggers by hand on the local stack, or in a deployed project (--project)."""


@trigger.command("publish")
@click.argument("topic")
@click.option("--data", default="", help="Message data (e.g. a JSON object of flow params).")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="Message attribute.")
@project_option
@click.option("--json", "as_json", is_flag=True)
def trigger_publish(
    topic: str, data: str, attrs: tuple[str, ...], project: str | None, as_json: bool
) -> None:
    """Publish one message to TOPIC, as any producer would."""

    attributes = {}
    for pair in attrs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} should be key=value", param_hint="--attr")
        attributes[key] = value
    with guard(as_json):
        if project:
            from orchestrator.cloud import publish_to_project

            message_id = publish_to_project(project, topic, data.encode(), attributes)
        else:
            from orchestrator.local import publish

            message_id = publish(topic, data.encode(), attributes)
    echo({"topic": topic, "message_id": message_id}, as_json, f"published {message_id} to {topic}")
