"""`kumoflow ui`: the dashboard over the local stack, or a deployed project (--project); and
`kumoflow run --ui`: over an in-process run's memory store, for as long as the command runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orchestrator.cli._output import guard
from orchestrator.cli._target import project_option, target_runtime

if TYPE_CHECKING:
    from orchestrator.runtime import InProcessRunner


@click.command()
@click.option("--port", default=8080, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 in a container.")
@click.option("--read-only", is_flag=True, help="No retry or cancel buttons.")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="A host name the dashboard answers to (repeatable; *.example.com for subdomains). "
    "Default: KUMOFLOW_UI_ALLOWED_HOSTS, else localhost and 127.0.0.1; other names get 400.",
)
@project_option
def ui(
    port: int, host: str, read_only: bool, allowed_hosts: tuple[str, ...], project: str | None
) -> None:
    """Serve the web dashboard: runs, each run's DAG, task attempts and logs, flows."""
    from orchestrator.ui import create_app, serve

    with guard(False):
        rt = target_runtime(project)
        app = create_app(  # refuses operators it could not verify
            rt, read_only=read_only, allowed_hosts=allowed_hosts or None
        )
    click.echo(f"kumoflow dashboard on http://{host}:{port}/runs (Ctrl-C stops it)", err=True)
    serve(app, host=host, port=port)


def serve_history(runner: InProcessRunner, run_id: str, *, port: int) -> str:
    """Serve the dashboard over `runner`'s store, driving its runs (a retry from the page runs
    here), until Ctrl-C; returns the run's status then (lowercase, as `run` prints it)."""
    from orchestrator.ui import create_app, serve

    with guard(False):
        app = create_app(runner.rt)
    halt = runner.drive_in_background()
    try:
        click.echo(
            f"kumoflow dashboard on http://127.0.0.1:{port}/runs/{run_id} (this run's "
            "in-process history; Ctrl-C stops it)",
            err=True,
        )
        serve(app, host="127.0.0.1", port=port)
    finally:
        halt()
        runner.close()
    snap = runner.store.load(run_id, [])
    assert snap is not None  # the store is this process's own
    return snap.run.status.value.lower()
