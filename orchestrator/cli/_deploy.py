"""`kumoflow deploy`: register a file's flows and wire their triggers."""

from __future__ import annotations

import click

from orchestrator.cli._output import echo, guard


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
    from orchestrator.local import deploy_local

    del target  # the one target for now; Google Cloud deploys through infra/ (Terraform)
    with guard(as_json):
        done = deploy_local(path)
    human = "\n".join(
        f"{d['flow']} {d['version']}: " + (", ".join(d["triggers"]) or "no triggers") for d in done
    )
    echo(done, as_json, human)
