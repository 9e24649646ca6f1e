"""`kumoflow dev`: start, inspect and stop the local stack."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any, TypeVar

import click

from orchestrator.cli._output import echo, guard
from orchestrator.emulators import DEFAULT_PORT_BASE, PORT_BASE_ENV, PORTS, SETTINGS, Service

_F = TypeVar("_F", bound=Callable[..., Any])
_OPTIONAL = [s for s in Service if s.optional]

# `\b` keeps click from re-flowing the lines: one variable a line, in every dev command's help.
_SETTINGS_HELP = "\b\nSettings (environment):\n" + "\n".join(
    f"  {name:<28} {what}" for name, what in SETTINGS
)


class _Services(click.ParamType):  # type: ignore[type-arg]
    """`bigquery,cloudrun`: a comma-separated list of the stack's optional services."""

    name = "SERVICE[,SERVICE]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        out: list[Service] = []
        for part in filter(None, (p.strip() for p in str(value).split(","))):
            found = next((s for s in _OPTIONAL if s.value == part), None)
            if found is None:
                self.fail(
                    f"{part!r} is not an optional service; choose from "
                    + ", ".join(s.value for s in _OPTIONAL),
                    param,
                    ctx,
                )
            out.append(found)
        return tuple(out)


def _port_base(fn: _F) -> _F:
    return click.option(
        "--port-base",
        type=click.IntRange(1, 65535 - max(p.offset for p in PORTS)),
        envvar=PORT_BASE_ENV,
        show_envvar=True,
        default=None,
        metavar="N",
        help=f"The stack on ports N+1.. (default {DEFAULT_PORT_BASE}), with a state folder "
        "of its own: a second stack beside the first.",
    )(fn)


def _command(fn: Callable[..., Any]) -> click.Command:
    return dev.command(epilog=_SETTINGS_HELP)(fn)


@click.group(epilog=_SETTINGS_HELP)
def dev() -> None:
    """The local stack: Pub/Sub and Firestore emulators, fake-gcs-server, the functions; and
    BigQuery (bqemulator) and Cloud Run when asked or used."""


@_command
@_port_base
@click.option(
    "--with",
    "services",
    type=_Services(),
    multiple=True,
    help="Also start these optional services: "
    + ", ".join(s.value for s in _OPTIONAL)
    + ". Without it they start when a flow put on the stack (kumoflow deploy, kumoflow run "
    "--backend emulator) calls bigquery_query or a CloudRunJob; once started they run until "
    "`kumoflow dev down`.",
)
@click.option("--json", "as_json", is_flag=True)
def up(port_base: int | None, services: tuple[tuple[Service, ...], ...], as_json: bool) -> None:
    """Start the stack (a second call reuses a healthy one) and wire the functions."""
    from orchestrator.local import DevStack
    from orchestrator.local import up as stack_up

    asked = tuple(dict.fromkeys(s for group in services for s in group))
    with guard(as_json):
        state = stack_up(DevStack.from_env(port_base), services=asked)
    echo(state, as_json, _summary(state) + "\n" + _table(state))


@_command
@_port_base
@click.option("--json", "as_json", is_flag=True)
def status(port_base: int | None, as_json: bool) -> None:
    """Show each process of the stack: PID, port, health, memory."""
    from orchestrator.local import DevStack
    from orchestrator.local import status as stack_status

    state = stack_status(DevStack.from_env(port_base))
    echo(state, as_json, _table(state))


@_command
@_port_base
@click.option("--json", "as_json", is_flag=True)
def down(port_base: int | None, as_json: bool) -> None:
    """Stop everything the stack started, by PID."""
    from orchestrator.local import DevStack
    from orchestrator.local import down as stack_down

    stopped = stack_down(DevStack.from_env(port_base))
    echo(stopped, as_json, "stopped: " + (", ".join(stopped) or "nothing was running"))


@_command
@_port_base
def env(port_base: int | None) -> None:
    """Print `export` lines that point clients (and later kumoflow commands) at the stack."""
    from orchestrator.local import DevStack

    values = DevStack.from_env(port_base).env()
    click.echo("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(values.items())))


def _summary(state: dict[str, Any]) -> str:
    line = "running: " + ", ".join(state["running"])
    if state["not_started"]:
        names = ",".join(state["not_started"])
        line += f"; not started: {names.replace(',', ', ')} (kumoflow dev up --with {names})"
    return line


def _table(state: dict[str, Any]) -> str:
    rows = [*state.get("services", []), *state.get("functions", [])]
    lines = [f"{'name':<16} {'pid':>8} {'port':>6} {'state':<12} {'rss MiB':>8}  log"]
    for r in rows:
        rss = f"{r['rss_bytes'] / 2**20:.0f}" if r.get("rss_bytes") else "-"
        lines.append(
            f"{r['name']:<16} {r.get('pid') or '-':>8} {r.get('port') or '-':>6} "
            f"{r['state']:<12} {rss:>8}  {r.get('log', '')}"
        )
    return "\n".join(lines)
