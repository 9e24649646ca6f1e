"""Where a CLI command acts: the local stack, or a deployed Google Cloud project (`--project`)."""

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


def target_runtime(project: str | None) -> Runtime:
    if project:
        from orchestrator.cloud import project_runtime

        return project_runtime(project)
    from orchestrator.local import stack_runtime

    return stack_runtime()
