"""`kumoflow runs`: list, show, cancel and retry runs: on the local stack, in a deployed
project (--project), or in the history of in-process runs when no stack runs."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from orchestrator.cli._output import describe, echo, guard
from orchestrator.cli._target import in_process_option, on_history, project_option, runs_runtime
from orchestrator.contracts import Run, RunStatus


@click.group()
def runs() -> None:
    """Runs on the local stack, in a deployed project (--project), or, when no stack runs
    (or with --in-process), the history of in-process runs (`kumoflow run`)."""


STATUSES = ", ".join(s.value.lower() for s in RunStatus)


def _statuses(
    ctx: click.Context, param: click.Parameter, given: tuple[str, ...]
) -> frozenset[RunStatus]:
    """--status values, each one status or a comma list ("failed,cancelled"), any case."""
    out = set()
    for name in (n.strip() for value in given for n in value.split(",")):
        if not name:
            continue
        try:
            out.add(RunStatus(name.upper()))
        except ValueError:
            raise click.BadParameter(f"{name!r} is not a run status; one of: {STATUSES}") from None
    return frozenset(out)


def _complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return [s.value.lower() for s in RunStatus if s.value.lower().startswith(incomplete.lower())]


@runs.command("list")
@click.option("--flow", default=None, help="Only runs of this flow.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    callback=_statuses,
    shell_complete=_complete,
    help=f"Only runs in this status: {STATUSES} (repeatable, or a comma list). Reads on "
    "through at most 5 x --limit recent runs to find them.",
)
@click.option("--limit", default=50, show_default=True)
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def list_cmd(
    flow: str | None,
    statuses: frozenset[RunStatus],
    limit: int,
    project: str | None,
    in_process: bool,
    as_json: bool,
) -> None:
    """List runs, newest first, with how long each took (so far, while it runs)."""
    from orchestrator.local import find_runs

    with guard(as_json):
        rt = runs_runtime(project, in_process)
        found, _ = find_runs(rt, flow=flow, statuses=statuses, limit=limit)
        now = rt.clock.now()
        rows = [_row(r, now) for r in found]
        if any(r.status is RunStatus.PENDING for r in found):
            from orchestrator.runtime import waiting_runs

            waits = waiting_runs(rt)
            for row in rows:  # in line for a run slot of its flow (max_active_runs)
                if row["run_id"] in waits:
                    row["waiting_for_slot"] = waits[row["run_id"]]
    echo(rows, as_json, _table(rows) if rows else "no runs")


def _table(rows: list[dict[str, Any]]) -> str:
    """The runs as aligned columns under a header."""
    from orchestrator.local import duration_text

    cells = [["RUN", "FLOW", "STATUS", "DURATION", "CREATED (UTC)", "TRIGGER"]]
    for r in rows:
        ongoing = " so far" if r["duration_s"] is not None and r["ended_at"] is None else ""
        created = datetime.fromisoformat(r["created_at"]).astimezone(UTC)
        cells.append(
            [
                r["run_id"],
                r["flow"],
                r["status"] + (" (waiting for a run slot)" if "waiting_for_slot" in r else ""),
                duration_text(r["duration_s"]) + ongoing,
                created.strftime("%Y-%m-%d %H:%M:%S"),
                r["trigger"]["kind"],
            ]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


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
    echo(found, as_json, json.dumps(_from_user_frames(found), indent=2, default=str))


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
@click.argument("run_id")
@click.option(
    "--input",
    "given",
    required=True,
    help="The paused node's input as JSON, validated by its form's pydantic model.",
)
@click.option("--key", default=None, help="The paused node, when several wait in the run.")
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def resume(
    run_id: str, given: str, key: str | None, project: str | None, in_process: bool, as_json: bool
) -> None:
    """Give a paused run (`pause(input=Model)`) its input: the node ends with it and the run
    goes on. Input that does not fit the model is refused with the model's errors (nothing
    changes); a run not waiting (resumed before, timed out, cancelled) is refused too. To
    run a FAILED or CANCELLED run again, see `runs retry`."""
    from orchestrator.local import load_run
    from orchestrator.waits import InputRefused, resume

    with guard(as_json):
        rt = runs_runtime(project, in_process)
        try:
            done = resume(rt, run_id, given, key=key)
        except InputRefused as e:
            if e.errors:
                lines = [f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors]
                raise InputRefused("input refused:\n  " + "\n  ".join(lines)) from None
            raise
        found = describe(rt, load_run(rt, run_id), detail=True)
    echo(found, as_json, f"run {run_id}: {done.key} resumed with {json.dumps(done.value)}")


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
    from orchestrator.local import driving, history_runner, load_run, retryable

    with history_runner() as runner, driving(run_id):
        run = retryable(runner.rt, run_id)
        order = [n.key for n in runner.rt.spec(run.flow_version).nodes]
        if as_json:
            outcome = runner.resume(run_id)
        else:
            with LiveProgress(Console(stderr=True), run.flow, order) as progress:
                outcome = runner.resume(run_id, progress=progress)
        snap = load_run(runner.rt, run_id)
        return describe(runner.rt, snap, order, detail=True), outcome.run.attempt


def _from_user_frames(found: dict[str, Any]) -> dict[str, Any]:
    """`runs show`'s object with each attempt's traceback from the user's first frame (the
    frames of kumoflow before it hidden; --json keeps them)."""
    from orchestrator.runtime import user_traceback

    tasks = []
    for row in found["tasks"]:
        history = [
            {
                **a,
                "error": {**a["error"], "traceback": user_traceback(a["error"]["traceback"]).text},
            }
            if (a.get("error") or {}).get("traceback")
            else a
            for a in row.get("history", [])
        ]
        tasks.append({**row, "history": history})
    return {**found, "tasks": tasks}


def _row(r: Run, now: datetime) -> dict[str, Any]:
    from orchestrator.local import elapsed

    seconds = elapsed(r.started_at, r.ended_at, now)
    return {
        "run_id": r.run_id,
        "flow": r.flow,
        "status": r.status.value.lower(),
        "created_at": r.created_at.isoformat(),
        "started_at": r.started_at and r.started_at.isoformat(),
        "ended_at": r.ended_at and r.ended_at.isoformat(),
        "duration_s": None if seconds is None else round(seconds, 3),
        "flow_version": r.flow_version,
        "trigger": r.trigger.model_dump(mode="json"),
        "result_uri": r.result_uri,
    }
