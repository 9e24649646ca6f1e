"""`kumoflow dev`, `kumoflow runs` and `kumoflow dlq`: the local stack and what ran on it."""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Iterator
from typing import Any

import click

from orchestrator._errors import KumoflowError


def _out(value: Any, as_json: bool, human: str) -> None:
    click.echo(json.dumps(value, default=str) if as_json else human)


@contextlib.contextmanager
def _guard(as_json: bool) -> Iterator[None]:
    """Turn our errors into a clear message and exit code 2."""
    try:
        yield
    except KumoflowError as e:
        from orchestrator._cli import _fail

        _fail(str(e), as_json)


@click.group()
def dev() -> None:
    """The local stack: Pub/Sub and Firestore emulators, fake-gcs-server, the functions."""


@dev.command()
@click.option("--json", "as_json", is_flag=True)
def up(as_json: bool) -> None:
    """Start the stack (a second call reuses a healthy one) and wire the functions."""
    from orchestrator._devstack import DevStack
    from orchestrator._devstack import up as stack_up

    with _guard(as_json):
        state = stack_up(DevStack.from_env())
    _out(state, as_json, _table(state))


@dev.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Show each process of the stack: PID, port, health, memory."""
    from orchestrator._devstack import DevStack
    from orchestrator._devstack import status as stack_status

    state = stack_status(DevStack.from_env())
    _out(state, as_json, _table(state))


@dev.command()
@click.option("--json", "as_json", is_flag=True)
def down(as_json: bool) -> None:
    """Stop everything the stack started, by PID."""
    from orchestrator._devstack import DevStack
    from orchestrator._devstack import down as stack_down

    stopped = stack_down(DevStack.from_env())
    _out(stopped, as_json, "stopped: " + (", ".join(stopped) or "nothing was running"))


@dev.command()
def env() -> None:
    """Print `export` lines that point clients at the stack."""
    from orchestrator._devstack import DevStack

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


@click.group()
def runs() -> None:
    """Runs on the local stack."""


@runs.command("list")
@click.option("--flow", default=None, help="Only runs of this flow.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(flow: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    from orchestrator._cli_cloud import list_runs

    with _guard(as_json):
        found = list_runs(flow, limit)
    human = (
        "\n".join(
            f"{r['run_id']}  {r['flow']:<20} {r['status']:<10} {r['created_at']}  "
            f"{r['trigger']['kind']}"
            for r in found
        )
        or "no runs"
    )
    _out(found, as_json, human)


@runs.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def show(run_id: str, as_json: bool) -> None:
    """Show one run: status, result, timestamps, each task's attempts and result URI."""
    from orchestrator._cli_cloud import show_run

    with _guard(as_json):
        found = show_run(run_id)
    _out(found, as_json, json.dumps(found, indent=2, default=str))


@runs.command()
@click.argument("run_id")
@click.option("--reason", default="cancelled from the CLI", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def cancel(run_id: str, reason: str, as_json: bool) -> None:
    """Cancel a run: tasks not yet finished are cancelled, the run ends CANCELLED."""
    from orchestrator._cli_cloud import cancel_run

    with _guard(as_json):
        found = cancel_run(run_id, reason)
    _out(found, as_json, f"run {run_id} {found['status']}")


@click.group()
def dlq() -> None:
    """Dead letters: input the functions rejected, with the reason."""


@dlq.command("list")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def dlq_list(limit: int, as_json: bool) -> None:
    """List dead-letter records, newest first."""
    from orchestrator._cli_cloud import dead_letters

    with _guard(as_json):
        found = dead_letters(limit)
    human = "\n".join(f"{d['received_at']}  {d['source']:<12} {d['reason']}" for d in found)
    _out(found, as_json, human or "no dead letters")


@click.command()
@click.argument("path")
@click.option(
    "--target",
    type=click.Choice(["local"]),
    default="local",
    show_default=True,
    help="local: the running emulator stack (`kumoflow dev up`).",
)
@click.option("--json", "as_json", is_flag=True)
def deploy(path: str, target: str, as_json: bool) -> None:
    """Register every flow in PATH and wire its triggers."""
    from orchestrator._deploy import deploy_local

    del target  # the one target for now; Google Cloud deploys through infra/ (Terraform)
    with _guard(as_json):
        done = deploy_local(path)
    human = "\n".join(
        f"{d['flow']} {d['version']}: " + (", ".join(d["triggers"]) or "no triggers") for d in done
    )
    _out(done, as_json, human)


@click.group()
def trigger() -> None:
    """Fire triggers by hand on the local stack."""


@trigger.command("publish")
@click.argument("topic")
@click.option("--data", default="", help="Message data (e.g. a JSON object of flow params).")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="Message attribute.")
@click.option("--json", "as_json", is_flag=True)
def trigger_publish(topic: str, data: str, attrs: tuple[str, ...], as_json: bool) -> None:
    """Publish one message to TOPIC, as any producer would."""
    from orchestrator._deploy import publish

    attributes = {}
    for pair in attrs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} should be key=value", param_hint="--attr")
        attributes[key] = value
    with _guard(as_json):
        message_id = publish(topic, data.encode(), attributes)
    _out({"topic": topic, "message_id": message_id}, as_json, f"published {message_id} to {topic}")
