"""`kumoflow runs`: list, show, cancel and retry runs: on the local stack, in a deployed
project (--project), or in the history of in-process runs when no stack runs."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from orchestrator.cli._output import describe, echo, guard
from orchestrator.cli._target import in_process_option, on_history, project_option, runs_runtime
from orchestrator.contracts import Run


@click.group()
def runs() -> None:
    """Runs on the local stack, in a deployed project (--project), or, when no stack runs
    (or with --in-process), the history of in-process runs (`kumoflow run`)."""


@runs.command("list")
@click.option("--flow", default=None, help="Only runs of this flow.")
@click.option("--limit", default=50, show_default=True)
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def list_cmd(
    flow: str | None, limit: int, project: str | None, in_process: bool, as_json: bool
) -> None:
    """List runs, newest first."""
    with guard(as_json):
        rt = runs_runtime(project, in_process)
        found = [_row(r) for r in rt.state.list_runs(flow, limit)]
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
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def show(run_id: str, project: str | None, in_process: bool, as_json: bool) -> None:
    """Show one run: status, result, timestamps, each task's attempts and result URI."""
    from orchestrator.local import load_run

    with guard(as_json):
        rt = runs_runtime(project, in_process)
        found = describe(rt, load_run(rt, run_id), detail=True)
    echo(found, as_json, json.dumps(found, indent=2, default=str))


@runs.command()
@click.argument("run_id")
@click.option("--reason", default="cancelled from the CLI", show_default=True)
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def cancel(run_id: str, reason: str, project: str | None, in_process: bool, as_json: bool) -> None:
    """Cancel a run: tasks not yet finished are cancelled, the run ends CANCELLED (an
    in-process run's own `kumoflow run` then stops following it)."""
    from orchestrator.local import cancel_run

    with guard(as_json):
        rt = runs_runtime(project, in_process)
        found = describe(rt, cancel_run(rt, run_id, reason), detail=True)
    echo(found, as_json, f"run {run_id} {found['status']}")


@runs.command()
@click.argument("run_id")
@click.option(
    "--wait/--no-wait",
    default=False,
    help="Follow the resumed run to its end (an in-process run always runs to its end here).",
)
@click.option("--timeout", type=float, default=None, help="Stop waiting after this many seconds.")
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def retry(
    run_id: str,
    wait: bool,
    timeout: float | None,
    project: str | None,
    in_process: bool,
    as_json: bool,
) -> None:
    """Resume a FAILED or CANCELLED run in place: same run id, its next flow attempt.

    What failed, was skipped or cancelled runs again; succeeded tasks keep their results
    (their code does not run again). A run of the in-process history resumes in this
    process, importing its flow's code from where it was run."""
    from orchestrator.local import follow, load_run, retry_run

    with guard(as_json):
        here = on_history(project, in_process)
        if here:
            found, attempt = _retry_in_process(run_id, as_json)
        else:
            rt = runs_runtime(project, in_process)
            attempt = retry_run(rt, run_id).attempt
            snap = follow(rt, run_id, timeout=timeout) if wait else load_run(rt, run_id)
            found = describe(rt, snap, detail=True)
    echo(found, as_json, f"run {run_id} {found['status']} (flow attempt {attempt})")
    if here:  # it ran here to its end: the exit code says how, as `kumoflow run`'s
        sys.exit(0 if found["status"] == "succeeded" else 1)


@runs.command()
@click.option(
    "--days",
    type=float,
    default=None,
    help="Forget runs that ended more than this many days ago (0: every ended run). "
    "Default: KUMOFLOW_HISTORY_DAYS, else 30.",
)
@click.option("--json", "as_json", is_flag=True)
def prune(days: float | None, as_json: bool) -> None:
    """Forget old runs of the in-process history (KUMOFLOW_HOME): their records, results and
    logs. Runs not ended stay. (The stack and deployed projects keep theirs in Firestore,
    whose TTL policies expire them: KUMOFLOW_RETENTION_DAYS.)"""
    from datetime import timedelta

    from orchestrator.local import keep_days
    from orchestrator.local import prune as prune_history

    with guard(as_json):
        if days is not None and days < 0:
            raise click.BadParameter("needs 0 or more days", param_hint="--days")
        keep = keep_days() if days is None else days
        ids = prune_history(timedelta(days=keep))
    echo(
        {"pruned": ids, "days": keep},
        as_json,
        f"forgot {len(ids)} run(s) that ended more than {keep:g} day(s) ago",
    )


def _retry_in_process(run_id: str, as_json: bool) -> tuple[dict[str, Any], int]:
    from rich.console import Console

    from orchestrator.cli._output import LiveProgress
    from orchestrator.local import history_runner, load_run, retryable

    with history_runner() as runner:
        run = retryable(runner.rt, run_id)
        order = [n.key for n in runner.rt.spec(run.flow_version).nodes]
        if as_json:
            outcome = runner.resume(run_id)
        else:
            with LiveProgress(Console(stderr=True), run.flow, order) as progress:
                outcome = runner.resume(run_id, progress=progress)
        snap = load_run(runner.rt, run_id)
        return describe(runner.rt, snap, order, detail=True), outcome.run.attempt


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
