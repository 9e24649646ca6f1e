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
@click.option(
    "--dashboard-image",
    metavar="IMAGE",
    default=None,
    help="gcp: also deploy the dashboard (kumoflow ui) on Cloud Run behind IAP, from IMAGE "
    "(Python with kumoflow installed; docs/deploy.md).",
)
@click.option(
    "--dashboard-operator",
    "operators",
    multiple=True,
    metavar="EMAIL",
    help="gcp: an email that may retry and cancel runs in the dashboard (repeatable).",
)
@click.option(
    "--dashboard-viewer",
    "viewers",
    multiple=True,
    metavar="PRINCIPAL",
    help="gcp: user:EMAIL, group:EMAIL or domain:DOMAIN that may read the dashboard (repeatable).",
)
@click.option(
    "--block",
    "blocks",
    multiple=True,
    metavar="KIND/NAME",
    help="gcp: a block the flows load where the deploy cannot see it (inside a task, or "
    "through another block): its secrets get a Secret Manager secret the task functions may "
    "read (repeatable; blocks the flow bodies load are found by themselves).",
)
@click.option("--json", "as_json", is_flag=True)
def deploy(
    paths: tuple[str, ...],
    target: str,
    project: str | None,
    region: str,
    out: Path | None,
    apply: bool,
    dashboard_image: str | None,
    operators: tuple[str, ...],
    viewers: tuple[str, ...],
    blocks: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register every flow in FILE... and wire its triggers.

    With --target gcp the files are the project's whole deployment: triggers of flows not in
    them are removed from the project on apply, and so is the dashboard unless
    --dashboard-image is given again."""
    if target == "local":
        if project or out or apply or dashboard_image or operators or viewers or blocks:
            raise click.UsageError(
                "--project, --out, --apply, --block and --dashboard-* go with --target gcp "
                "(locally, `kumoflow ui` serves the dashboard)"
            )
        _deploy_local(paths, as_json)
        return
    if not project:
        raise click.UsageError("--target gcp needs --project (or KUMOFLOW_GCP_PROJECT)")
    if (operators or viewers) and not dashboard_image:
        raise click.UsageError("--dashboard-operator and --dashboard-viewer need --dashboard-image")
    from orchestrator.cloud import Dashboard, deploy_gcp

    dashboard = Dashboard(dashboard_image, operators, viewers) if dashboard_image else None
    with guard(as_json):
        done = deploy_gcp(
            list(paths),
            project=project,
            region=region,
            out=out,
            apply=apply,
            dashboard=dashboard,
            blocks=blocks,
        )
    lines = [
        f"{name} {version}: " + (", ".join(done.triggers.get(name, [])) or "no triggers")
        for name, version in done.flows.items()
    ]
    lines.append(
        f"function bundle: {done.bundle_bytes / 1e6:.1f} MB, {done.dependencies} dependencies "
        "pinned for the functions' runtime"
    )
    if done.kept:
        how = "they have runs going" if done.checked else "not checked: deploy with --apply"
        lines.append(
            f"code {done.code}; earlier code kept for its runs: {', '.join(done.kept)} ({how})"
        )
    if done.limits:
        lines.append("limits: " + ", ".join(f"{k}={n}" for k, n in done.limits.items()))
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
    from orchestrator.local import deploy_limits, deploy_local

    with guard(as_json):
        done = [d for path in paths for d in deploy_local(path)]
        limits = deploy_limits(paths)
    for d in done:
        d["limits"] = limits  # the files' concurrency limits, set on the stack
    human = "\n".join(
        f"{d['flow']} {d['version']}: "
        + (", ".join(d["triggers"]) or "no triggers")
        + (f"; uses {', '.join(d['uses'])} (started on the stack)" if d["uses"] else "")
        + (f"; earlier code kept for its runs: {', '.join(d['kept'])}" if d.get("kept") else "")
        for d in done
    )
    if limits:
        human += "\nlimits: " + ", ".join(f"{k}={n}" for k, n in limits.items())
    echo(done, as_json, human)
