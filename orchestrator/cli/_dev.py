"""`kumoflow dev`: start, inspect and stop the local stack."""

from __future__ import annotations

import shlex
from typing import Any

import click

from orchestrator.cli._output import echo, guard


@click.group()
def dev() -> None:
    """The local stack: Pub/Sub and Firestore emulators, fake-gcs-server, the functions."""


@dev.command()
@click.option("--json", "as_json", is_flag=True)
def up(as_json: bool) -> None:
    """Start the stack (a second call reuses a healthy one) and wire the functions."""
    from orchestrator.local import DevStack
    from orchestrator.local import up as stack_up

    with guard(as_json):
        state = stack_up(DevStack.from_env())
    echo(state, as_json, _table(state))


@dev.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Show each process of the stack: PID, port, health, memory."""
    from orchestrator.local import DevStack
    from orchestrator.local import status as stack_status

    state = stack_status(DevStack.from_env())
    echo(state, as_json, _table(state))


@dev.command()
@click.option("--json", "as_json", is_flag=True)
def down(as_json: bool) -> None:
    """Stop everything the stack started, by PID."""
    from orchestrator.local import DevStack
    from orchestrator.local import down as stack_down

    stopped = stack_down(DevStack.from_env())
    echo(stopped, as_json, "stopped: " + (", ".join(stopped) or "nothing was running"))


@dev.command()
def env() -> None:
    """Print `export` lines that point clients at the stack."""
    from orchestrator.local import DevStack

    values = DevStack.from_env().env()
    click.echo("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(values.items())))


def _table(state: dict[str, Any]) -> str:
    rows = [*state.get("services", []), *state.get("functions", [])]
    lines = [f"{'name':<16} {'pid':>8} {'port':>6} {'healthy':<8} {'rss MiB':>8}  log"]
    for r in rows:
        rss = f"{r['rss_bytes'] / 2**20:.0f}" if r.get("rss_bytes") else "-"
        lines.append(
            f"{r['name']:<16} {r.get('pid') or '-':>8} {r.get('port') or '-':>6} "
            f"{'yes' if r.get('healthy') else 'NO':<8} {rss:>8}  {r.get('log', '')}"
        )
    return "\n".join(lines)
