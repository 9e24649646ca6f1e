"""`kumoflow schedules`: list, pause and resume the Cloud Scheduler jobs of a deployed project's
on_schedule triggers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orchestrator.cli._output import echo, guard

if TYPE_CHECKING:
    from orchestrator.cloud import Action, Scheduler

_project = click.option(
    "--project",
    envvar="KUMOFLOW_GCP_PROJECT",
    required=True,
    help="The deployed Google Cloud project (Application Default Credentials). "
    "Env: KUMOFLOW_GCP_PROJECT.",
)
_region = click.option(
    "--region",
    default=None,
    help="The jobs' region. [default: the one `kumoflow deploy` rendered for the project "
    "(.kumoflow/gcp/PROJECT/terraform.tfvars.json)]",
)


def _scheduler(project: str, region: str | None) -> Scheduler:
    from orchestrator.cloud import Scheduler, default_out, deployed_region, project_session
    from orchestrator.errors import KumoflowError

    region = region or deployed_region(default_out(project))
    if not region:
        raise KumoflowError(
            f"no deploy of {project!r} rendered here to read the region from: give --region"
        )
    return Scheduler(project=project, region=region, session=project_session(project))


@click.group()
def schedules() -> None:
    """The Cloud Scheduler jobs of a deployed project's on_schedule triggers."""


@schedules.command("ls")
@_project
@_region
@click.option("--json", "as_json", is_flag=True)
def schedules_ls(project: str, region: str | None, as_json: bool) -> None:
    """List the flows' schedule jobs and their state."""
    with guard(as_json):
        jobs = _scheduler(project, region).jobs()
    lines = [f"{j.job}  {j.flow}  {j.cron} ({j.time_zone})  {j.state.value}" for j in jobs]
    echo([j.to_json() for j in jobs], as_json, "\n".join(lines) or "no schedule jobs")


def _act(project: str, region: str | None, names: tuple[str, ...], every: bool, action: Action,
         as_json: bool) -> None:  # fmt: skip
    if bool(names) == every:
        raise click.UsageError("name the flows or jobs (NAME...), or give --all")
    with guard(as_json):
        scheduler = _scheduler(project, region)
        chosen = scheduler.jobs() if every else scheduler.select(names)
        done = [scheduler.act(j.job, action) for j in chosen]
    lines = [f"{j.job}  {j.state.value}" for j in done]
    echo([j.to_json() for j in done], as_json, "\n".join(lines) or "no schedule jobs")


@schedules.command("pause")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "every", is_flag=True, help="Every flow's schedule job.")
@_project
@_region
@click.option("--json", "as_json", is_flag=True)
def schedules_pause(
    names: tuple[str, ...], every: bool, project: str, region: str | None, as_json: bool
) -> None:
    """Pause the schedule jobs of the flows (or jobs) NAME...: no run starts until resumed."""
    from orchestrator.cloud import Action

    _act(project, region, names, every, Action.PAUSE, as_json)


@schedules.command("resume")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "every", is_flag=True, help="Every flow's schedule job.")
@_project
@_region
@click.option("--json", "as_json", is_flag=True)
def schedules_resume(
    names: tuple[str, ...], every: bool, project: str, region: str | None, as_json: bool
) -> None:
    """Resume paused schedule jobs: the next cron slot fires (missed ones do not)."""
    from orchestrator.cloud import Action

    _act(project, region, names, every, Action.RESUME, as_json)
