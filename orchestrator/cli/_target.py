"""Where a CLI command acts: the local stack, a deployed Google Cloud project (`--project`), or
the history of in-process runs (KUMOFLOW_HOME) when no stack runs (or with `--in-process`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from orchestrator.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])


def project_option(func: F) -> F:
    return click.option(
        "--project",
        envvar="KUMOFLOW_GCP_PROJECT",
        default=None,
        help="A deployed Google Cloud project (Application Default Credentials) instead of "
        "the local stack. Env: KUMOFLOW_GCP_PROJECT.",
    )(func)


def in_process_option(func: F) -> F:
    return click.option(
        "--in-process",
        "in_process",
        is_flag=True,
        help="The history of in-process runs (`kumoflow run`, kept in KUMOFLOW_HOME, default "
        "~/.kumoflow), even while the local stack runs. Without a stack it is the default.",
    )(func)


def on_history(project: str | None, in_process: bool = False) -> bool:
    """Whether the command acts on the history of in-process runs: no project named, and
    `--in-process` given or no local stack started."""
    if project:
        return False
    from orchestrator.local import stack_started

    return in_process or not stack_started()


def target_runtime(project: str | None) -> Runtime:
    """The deployed project, else the local stack (or a clear error saying how to start it):
    for commands that need the functions (triggers, redrives)."""
    if project:
        from orchestrator.cloud import project_runtime

        return project_runtime(project)
    from orchestrator.local import stack_runtime

    return stack_runtime()


def runs_runtime(project: str | None, in_process: bool = False) -> Runtime:
    """Where runs are read and steered: as target_runtime, or the history of in-process runs
    (see on_history)."""
    if on_history(project, in_process):
        from orchestrator.local import history_runtime

        return history_runtime()
    return target_runtime(project)
