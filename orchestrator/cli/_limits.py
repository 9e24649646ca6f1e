"""`kumoflow limits`: concurrency limits by key, set as data (no redeploy), and their state;
with the rate keys tasks declared (`rate="KEY:COUNT/UNIT"`) and theirs."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from orchestrator.cli._output import echo, guard
from orchestrator.cli._target import in_process_option, project_option, runs_runtime


@click.group()
def limits() -> None:
    """Concurrency limits by key: `@task(concurrency="KEY")` runs at most N at once."""


@limits.command("set")
@click.argument("key")
@click.argument("limit", type=click.IntRange(min=0))
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def limits_set(key: str, limit: int, project: str | None, in_process: bool, as_json: bool) -> None:
    """Let at most LIMIT attempts of KEY run at once (a raise serves waiters at once; a cut
    lets running attempts finish)."""
    from orchestrator.runtime import set_limit

    with guard(as_json):
        set_limit(runs_runtime(project, in_process), key, limit)
    echo({"key": key, "limit": limit}, as_json, f"{key}: at most {limit} at once")


@limits.command("rm")
@click.argument("key")
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def limits_rm(key: str, project: str | None, in_process: bool, as_json: bool) -> None:
    """Remove KEY's limit: its waiters run at once, and nothing holds it any more."""
    from orchestrator.runtime import set_limit

    with guard(as_json):
        set_limit(runs_runtime(project, in_process), key, None)
    echo({"key": key, "limit": None}, as_json, f"{key}: no limit")


@limits.command("ls")
@project_option
@in_process_option
@click.option("--json", "as_json", is_flag=True)
def limits_ls(project: str | None, in_process: bool, as_json: bool) -> None:
    """Each key: its limit, slots in use, waiters and how long the oldest has waited; each rate
    key: its rate, starts in the current window and when the next may start."""
    with guard(as_json):
        rt = runs_runtime(project, in_process)
        states = rt.limits.limit_states() if rt.limits is not None else []
        now = datetime.now(UTC)
        rates = rt.rates.rate_states(now) if rt.rates is not None else []
    found = [
        {
            "key": s.key,
            "limit": s.limit,
            "in_use": s.in_use,
            "waiters": s.waiters,
            "oldest_wait": s.oldest_wait.isoformat() if s.oldest_wait else None,
            "holders": [slot.holder for slot in s.slots],
        }
        for s in states
    ] + [
        {
            "key": r.key,
            "rate": str(r.rate),
            "in_window": r.in_window,
            "next_free": r.next_free.isoformat() if r.next_free else None,
            "waiters_until": r.horizon.isoformat() if r.horizon else None,
        }
        for r in rates
    ]
    lines = [f"{'KEY':<24} {'LIMIT':>5} {'IN USE':>6} {'WAITING':>7}  OLDEST WAIT"]
    for s in states:
        waited = f"{(now - s.oldest_wait).total_seconds():.0f}s" if s.oldest_wait else "-"
        lines.append(f"{s.key:<24} {s.limit:>5} {s.in_use:>6} {s.waiters:>7}  {waited}")
    if rates:
        lines.append(f"{'RATE KEY':<24} {'RATE':>10} {'IN WINDOW':>9}  NEXT FREE")
    for r in rates:
        free = f"in {(r.next_free - now).total_seconds():.1f}s" if r.next_free else "now"
        per = f"{r.rate.count}/{r.rate.per.value}" if r.rate else "-"
        lines.append(f"{r.key:<24} {per:>10} {r.in_window:>9}  {free}")
    if not states:
        del lines[0]
    echo(found, as_json, "\n".join(lines) if lines else "no limits")
