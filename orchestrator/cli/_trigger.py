"""`kumoflow trigger`: fire triggers by hand on the local stack."""

from __future__ import annotations

import mimetypes
from pathlib import Path

import click

from orchestrator.cli._output import echo, guard
from orchestrator.cli._target import project_option, target_runtime


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


@trigger.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("uri", metavar="gs://BUCKET/OBJECT")
@click.option("--content-type", default=None, help="[default: guessed from FILE's name]")
@project_option
@click.option("--json", "as_json", is_flag=True)
def trigger_upload(
    file: Path, uri: str, content_type: str | None, project: str | None, as_json: bool
) -> None:
    """Upload FILE to gs://BUCKET/OBJECT: flows with a matching on_gcs_finalize start."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise click.BadParameter(f"{uri!r} should be gs://BUCKET/OBJECT", param_hint="URI")
    kind = content_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    with guard(as_json):
        # Overwriting is what an upload does: a new object generation, so a new run.
        target_runtime(project).blobs.put(uri, file.read_bytes(), kind, overwrite=True)
    echo({"uri": uri, "bytes": file.stat().st_size}, as_json, f"uploaded {file} to {uri}")
