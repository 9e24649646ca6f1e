"""`kumoflow runs`: list, show and cancel runs on the local stack."""

from __future__ import annotations

import json
from typing import Any

import click

from orchestrator.cli._output import describe, echo, guard
from orchestrator.cli._target import project_option, target_runtime
from orchestrator.contracts import Run


@click.group()
def runs() -> None:
    """Runs on the local stack, or in a deployed project (--project)."""


@runs.command("list")
@click.option("--flow", default=None, help="Only runs of this flow.")
@click.option("--limit", default=50, show_default=True)
@project_option
@click.option("--json", "as_json", is_flag=True)
def list_cmd(flow: str | None, limit: int, project: str | None, as_json: bool) -> None:
    """List runs, newest first."""
    with guard(as_json):
        found = [_row(r) for r in target_runtime(project).state.list_runs(flow, limit)]
    human = (
        "\n".join(
            f"{r['run_id']}  {r['flow']:<20} {r['status']:<10} {r['created_at']}  "
            f"{r['trigger']['kind']}"
            for r in found
        )
        or "no runs"
    )
    echo(found, as_json, human)


@runs.command()
@click.argument("run_id")
@project_option
@click.option("--json", "as_json", is_flag=True)
def show(run_id: str, project: str | None, as_json: bool) -> None:
    """Show one run: status, result, timestamps, each task's attempts and result URI."""
    from orchestrator.local import load_run

    with guard(as_json):
        rt = target_runtime(project)
        found = describe(rt, load_run(rt, run_id), detail=True)
    echo(found, as_json, json.dumps(found, indent=2, default=str))


@runs.command()
@click.argument("run_id")
@click.option("--reason", default="cancelled from the CLI", show_default=True)
@project_option
@click.option("--json", "as_json", is_flag=True)
def cancel(run_id: str, reason: str, project: str | None, as_json: bool) -> None:
    """Cancel a run: tasks not yet finished are cancelled, the run ends CANCELLED."""
    from orchestrator.local import cancel_run

    with guard(as_json):
        rt = target_runtime(project)
        found = describe(rt, cancel_run(rt, run_id, reason), detail=True)
    echo(found, as_json, f"run {run_id} {found['status']}")


@runs.command()
@click.argument("run_id")
@click.option("--wait/--no-wait", default=False, help="Follow the resumed run to its end.")
@click.option("--timeout", type=float, default=None, help="Stop waiting after this many seconds.")
@project_option
@click.option("--json", "as_json", is_flag=True)
def retry(
    run_id: str, wait: bool, timeout: float | None, project: str | None, as_json: bool
) -> None:
    """Resume a FAILED or CANCELLED run in place: same run id, its next flow attempt.

    What failed, was skipped or cancelled runs again; succeeded tasks keep their results
    (their code does not run again)."""
    from orchestrator.local import follow, load_run, retry_run

    with guard(as_json):
        rt = target_runtime(project)
        run = retry_run(rt, run_id)
        snap = follow(rt, run_id, timeout=timeout) if wait else load_run(rt, run_id)
        found = describe(rt, snap, detail=True)
    echo(found, as_json, f"run {run_id} {found['status']} (flow attempt {run.attempt})")


def _row(r: Run) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "flow": r.flow,
        "status": r.status.value.lower(),
        "created_at": r.created_at.isoformat(),
        "ended_at": r.ended_at and r.ended_at.isoformat(),
        "flow_version": r.flow_version,
        "trigger": r.trigger.model_dump(mode="json"),
        "result_uri": r.result_uri,
    }
