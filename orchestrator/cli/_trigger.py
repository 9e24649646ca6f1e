"""`kumoflow trigger`: fire triggers by hand on the local stack."""

from __future__ import annotations

import click

from orchestrator.cli._output import echo, guard


@click.group()
def trigger() -> None:
    """Fire triggers by hand on the local stack."""


@trigger.command("publish")
@click.argument("topic")
@click.option("--data", default="", help="Message data (e.g. a JSON object of flow params).")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="Message attribute.")
@click.option("--json", "as_json", is_flag=True)
def trigger_publish(topic: str, data: str, attrs: tuple[str, ...], as_json: bool) -> None:
    """Publish one message to TOPIC, as any producer would."""
    from orchestrator.local import publish

    attributes = {}
    for pair in attrs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} should be key=value", param_hint="--attr")
        attributes[key] = value
    with guard(as_json):
        message_id = publish(topic, data.encode(), attributes)
    echo({"topic": topic, "message_id": message_id}, as_json, f"published {message_id} to {topic}")
