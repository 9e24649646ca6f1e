"""`kumoflow deploy`: register flows and wire their triggers, locally or on Google Cloud."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli._output import echo, guard


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "--target",
    type=click.Choice(["local", "gcp"]),
    default="local",
    show_default=True,
    help="local: the running emulator stack (`kumoflow dev up`); gcp: a Terraform root "
    "module for a Google Cloud project (infra/), applied with --apply.",
)
@click.option("--project", envvar="KUMOFLOW_GCP_PROJECT", default=None, help="gcp: project id.")
@click.option("--region", default="us-central1", show_default=True, help="gcp: region.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="gcp: where to write the Terraform root module [default: .kumoflow/gcp/PROJECT].",
)
@click.option(
    "--apply", "apply", is_flag=True, help="gcp: run terraform init/plan/apply, then register."
)
@click.option("--json", "as_json", is_flag=True)
def deploy(
    paths: tuple[str, ...],
    target: str,
    project: str | None,
    region: str,
    out: Path | None,
    apply: bool,
    as_json: bool,
) -> None:
    """Register every flow in FILE... and wire its triggers.

    With --target gcp the files are the project's whole deployment: triggers of flows not in
    them are removed from the project on apply."""
    if target == "local":
        if project or out or apply:
            raise click.UsageError("--project, --out and --apply go with --target gcp")
        _deploy_local(paths, as_json)
        return
    if not project:
        raise click.UsageError("--target gcp needs --project (or KUMOFLOW_GCP_PROJECT)")
    from orchestrator.cloud import deploy_gcp

    with guard(as_json):
        done = deploy_gcp(list(paths), project=project, region=region, out=out, apply=apply)
    lines = [f"{name} {version}" for name, version in done.flows.items()]
    lines.append(f"Terraform root module: {done.out}")
    if done.applied:
        lines.append(f"applied and registered {len(done.flows)} flow(s) in {project}")
    else:
        lines.append("Next (or run this command again with --apply):")
        lines += [f"  {' '.join(c)}" for c in done.commands]
        lines.append(
            "then register the flows: the same deploy command with --apply (terraform "
            "finds nothing to change)"
        )
    echo(done.to_json(), as_json, "\n".join(lines))


def _deploy_local(paths: tuple[str, ...], as_json: bool) -> None:
    from orchestrator.local import deploy_local

    with guard(as_json):
        done = [d for path in paths for d in deploy_local(path)]
    human = "\n".join(
        f"{d['flow']} {d['version']}: " + (", ".join(d["triggers"]) or "no triggers") for d in done
    )
    echo(done, as_json, human)
