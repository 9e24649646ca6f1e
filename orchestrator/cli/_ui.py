"""`kumoflow ui`: the dashboard over the local stack, or a deployed project (--project)."""

from __future__ import annotations

import click

from orchestrator.cli._output import guard
from orchestrator.cli._target import project_option, target_runtime


@click.command()
@click.option("--port", default=8080, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 in a container.")
@click.option("--read-only", is_flag=True, help="No retry or cancel buttons.")
@project_option
def ui(port: int, host: str, read_only: bool, project: str | None) -> None:
    """Serve the web dashboard: runs, each run's DAG, task attempts and logs, flows."""
    from orchestrator.ui import create_app, serve

    with guard(False):
        rt = target_runtime(project)
        app = create_app(rt, read_only=read_only)  # refuses operators it could not verify
    click.echo(f"kumoflow dashboard on http://{host}:{port}/runs (Ctrl-C stops it)", err=True)
    serve(app, host=host, port=port)
