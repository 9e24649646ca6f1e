"""`kumoflow init DIR`: scaffold a project of one's own."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli._output import echo, fail
from orchestrator.cli._scaffold import pin, render, slug_of


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--name", default=None, help="Project name (flow and bucket prefix) [default: DIR's name]."
)
@click.option(
    "--kumoflow",
    "requirement",
    default=None,
    metavar="REQUIREMENT",
    help="How the project depends on kumoflow, e.g. 'kumoflow>=0.1' once an index serves it "
    "[default: the kumoflow running this, as a direct reference: 'kumoflow @ file:///its/checkout' "
    "or its wheel's path].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")
def init(directory: Path, name: str | None, requirement: str | None, as_json: bool) -> None:
    """Create a project in DIRECTORY: flows.py with a GCS-triggered flow, its tests, a
    pyproject.toml depending on kumoflow and a README with the commands to run and deploy it.

    The project depends on the kumoflow that made it (its source checkout, or the wheel it was
    installed from), so `pip install -e '.[dev]'` works in a fresh venv with no package index
    serving kumoflow. Existing files are never overwritten."""
    slug = slug_of(name or directory.resolve().name)
    requirement = requirement or pin().requirement
    files = render(slug, requirement)
    taken = sorted(p for p in files if (directory / p).exists())
    if taken:
        fail(
            f"{directory} already has {', '.join(taken)}; nothing was written. "
            "Choose a new directory, or move those files away",
            as_json,
        )
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    human = "\n".join(
        [
            f"created {slug} in {directory}: {', '.join(files)}",
            f"it depends on {requirement} (README.md says how to change that)",
            "next:",
            f"  cd {directory}",
            "  python -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]'",
            "  kumoflow run flows.py:word_count --param text='to be or not to be'",
            "  pytest",
        ]
    )
    out = {"project": slug, "directory": str(directory), "files": list(files)}
    echo({**out, "kumoflow": requirement}, as_json, human)
