"""`kumoflow ui`: the dashboard over the local stack, a deployed project (--project), or the
history of in-process runs; and `kumoflow run --ui`: over an in-process run's store, for as
long as the command runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orchestrator.cli._output import guard
from orchestrator.cli._target import (
    in_process_option,
    on_history,
    project_option,
    runs_runtime,
)

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
@in_process_option
def ui(
    port: int,
    host: str,
    read_only: bool,
    allowed_hosts: tuple[str, ...],
    project: str | None,
    in_process: bool,
) -> None:
    """Serve the web dashboard: runs, each run's DAG, task attempts and logs, flows.

    Over the history of in-process runs, a run retried from the page runs in this process."""
    from orchestrator.ui import create_app, serve

    runner = None
    with guard(False):
        if on_history(project, in_process):
            from orchestrator.local import history_runner

            runner = history_runner()
            rt = runner.rt
        else:
            rt = runs_runtime(project, in_process)
        app = create_app(  # refuses operators it could not verify
            rt, read_only=read_only, allowed_hosts=allowed_hosts or None
        )
    click.echo(f"kumoflow dashboard on http://{host}:{port}/runs (Ctrl-C stops it)", err=True)
    if runner is None:
        serve(app, host=host, port=port)
        return
    halt = runner.drive_in_background()
    try:
        serve(app, host=host, port=port)
    finally:
        halt()
        runner.close()


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
