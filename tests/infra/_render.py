"""Render every example with `kumoflow deploy --target gcp` (shared by the infra tests)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cloud import Dashboard, render
from orchestrator.local import flows_in
from tests._offline import offline_resolve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name != "__init__.py")
PROJECT, REGION = "kumoflow-example", "asia-northeast1"


def render_example(example: Path, out: Path, dashboard: Dashboard | None = None) -> Path:
    specs = [f.spec for f in flows_in(str(example))]
    render(
        [str(example)],
        specs,
        project=PROJECT,
        region=REGION,
        out=out,
        dashboard=dashboard,
        resolve=offline_resolve,
    )
    return out
