"""The dashboard's Terraform inputs (infra/dashboard.tf): `kumoflow ui` on Cloud Run behind IAP.

Checked here as infra/variables.tf checks them, so a bad principal fails the deploy command,
not a plan: operators are plain emails (IAP's signed assertion carries the email), viewers are
user:, group: or domain: principals, never allUsers or allAuthenticatedUsers (the dashboard
shows every run's parameters and logs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import KumoflowError

# The same patterns as infra/variables.tf's validations (a test holds them equal).
OPERATOR_PATTERN = r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
VIEWER_PATTERN = rf"(user|group):{OPERATOR_PATTERN}|domain:[A-Za-z0-9.-]+\.[A-Za-z]{{2,}}"


@dataclass(frozen=True)
class Dashboard:
    image: str
    operators: tuple[str, ...] = ()
    viewers: tuple[str, ...] = ()


def dashboard_tfvars(dashboard: Dashboard | None) -> dict[str, Any]:
    """terraform.tfvars.json's dashboard keys: off, or on with its image and principals."""
    if dashboard is None:
        return {"dashboard_enabled": False}
    if not dashboard.image.strip():
        raise KumoflowError(
            "the dashboard needs an image with kumoflow installed (docs/deploy.md, "
            "'The dashboard'): --dashboard-image REGION-docker.pkg.dev/P/REPO/kumoflow-ui"
        )
    for email in dashboard.operators:
        if not re.fullmatch(OPERATOR_PATTERN, email):
            raise KumoflowError(
                f"dashboard operator {email!r} is not a plain email: give alice@example.com "
                "(no user: prefix; IAP's signed assertion carries the user's email)"
            )
    for principal in dashboard.viewers:
        if not re.fullmatch(VIEWER_PATTERN, principal):
            raise KumoflowError(
                f"dashboard viewer {principal!r} is not user:EMAIL, group:EMAIL or "
                "domain:DOMAIN (allUsers and allAuthenticatedUsers are refused: the dashboard "
                "shows every run's parameters and logs)"
            )
    return {
        "dashboard_enabled": True,
        "dashboard_image": dashboard.image.strip(),
        "dashboard_operators": _unique(e.lower() for e in dashboard.operators),
        "dashboard_viewers": _unique(dashboard.viewers),
    }


def _unique(values: Iterable[str]) -> list[str]:
    return sorted(set(values))
