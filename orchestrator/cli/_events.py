"""`kumoflow events send`: a kumoflow event for the flows that wait on it
(`wait_for_event(kumoflow_event(NAME))`), kept once per id in the results bucket."""

from __future__ import annotations

import json
import uuid

import click

from orchestrator.cli._output import echo, guard
from orchestrator.cli._target import in_process_option, project_option, runs_runtime


@click.group()
def events() -> None:
    """kumoflow's own events, for waiting flows."""


@events.command()
@click.argument("name")
@click.option("--data", default="null", show_default=True, help="The event's data, as JSON.")
@click.option(
    "--id", "event_id", default=None, help="Its id: the same id again is a duplicate (kept once)."
)
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def send(
    name: str,
    data: str,
    event_id: str | None,
    project: str | None,
    in_process: bool,
    as_json: bool,
) -> None:
    """Send event NAME: every run waiting on it takes it if it matches (and later runs too,
    when they wait `since=Since.RUN_START` on a run started before it)."""
    from orchestrator.errors import BadInputError
    from orchestrator.waits import kumoflow_event, send_event

    with guard(as_json):
        try:
            value = json.loads(data)
        except ValueError as e:
            raise BadInputError(f"--data is not JSON: {e}") from None
        rt = runs_runtime(project, in_process)
        given = event_id or uuid.uuid4().hex
        fresh = send_event(kumoflow_event(name), value, event_id=given, rt=rt)
    out = {"event": name, "id": given, "duplicate": not fresh}
    echo(out, as_json, f"event {name} {given}" + (" (a duplicate: kept once)" if not fresh else ""))
