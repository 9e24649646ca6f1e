"""`kumoflow logs`: what a run's task attempts printed, logged and raised, in order."""

from __future__ import annotations

import json
import time

import click

from orchestrator.cli._output import guard
from orchestrator.cli._target import in_process_option, project_option, runs_runtime
from orchestrator.runtime import user_traceback

FOLLOW_S = 1.0


@click.command()
@click.argument("run_id")
@click.option("--task", "task", default=None, metavar="KEY", help="Only this task's attempts.")
@click.option("--attempt", type=int, default=None, help="Only this attempt (with --task).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing attempts as they end.")
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def logs(
    run_id: str,
    task: str | None,
    attempt: int | None,
    follow: bool,
    project: str | None,
    in_process: bool,
    as_json: bool,
) -> None:
    """Print the logs of RUN_ID's task attempts, oldest first.

    An attempt's log (stdout, stderr, logging records, the traceback when it failed) is stored
    beside its result when the attempt ends; --follow prints each as it is stored until the
    run ends. Live lines, while an attempt runs, are in Cloud Logging (one trace per run)."""
    from orchestrator.local import run_head, run_logs

    seen: set[tuple[str, int]] = set()
    with guard(as_json):
        rt = runs_runtime(project, in_process)
        while True:
            run = run_head(rt, run_id)
            for line in run_logs(rt, run, task=task, attempt=attempt, skip=seen):
                if as_json:
                    click.echo(json.dumps(line.json()))
                else:
                    _print(line.key, line.attempt, line.entry)
            # Read before the logs: every attempt of an ended run stored its log before it
            # reported, so this pass printed them all.
            if not follow or run.status.terminal:
                return
            time.sleep(FOLLOW_S)


def _print(key: str, attempt: int, entry: dict[str, object]) -> None:
    stamp = str(entry.get("time", ""))[11:23]
    level = str(entry.get("level", ""))
    color = {"ERROR": "red", "WARNING": "yellow", "CRITICAL": "red"}.get(level)
    head = click.style(f"{stamp} {level:<7} {key}#{attempt}", fg=color)
    message = str(entry.get("message", ""))
    if entry.get("stream") == "traceback":  # from the user's frame (--json keeps it whole)
        message = user_traceback(message).text
    click.echo(f"{head} | {message}")
