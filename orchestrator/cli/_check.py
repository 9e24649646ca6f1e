"""`kumoflow check FILE`: what of a Prefect flow file runs on kumoflow as is, what to change."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from orchestrator.cli._output import fail
from orchestrator.cli._prefect import Finding, check_source, summary

_COLOR = {"ok": "green", "change": "yellow", "unsupported": "red"}


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Exit 1 when anything needs a change, too.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")
def check(file: Path, strict: bool, as_json: bool) -> None:
    """Say what of a Prefect flow FILE runs on kumoflow as is, and what to change.

    FILE is parsed, never imported. Line by line: what kumoflow runs as is (ok), what needs
    a change and to which kumoflow construct (change), what has no counterpart (unsupported).

    Exit code: 0, or 1 when something is unsupported (with --strict: or needs a change)."""
    source = file.read_text()
    try:
        findings = check_source(source, str(file))
    except SyntaxError as e:
        fail(f"{file}:{e.lineno}: not Python ({e.msg}); fix the syntax and check again", as_json)
    counts = summary(findings)
    if as_json:
        out = {"file": str(file), "counts": counts, "findings": [f.to_json() for f in findings]}
        click.echo(json.dumps(out))
    else:
        _print(file, source.splitlines(), findings, counts)
    blocked = counts["unsupported"] or (strict and counts["change"])
    sys.exit(1 if blocked else 0)


def _print(file: Path, lines: list[str], findings: list[Finding], counts: dict[str, int]) -> None:
    for f in findings:
        code = lines[f.line - 1].strip() if 0 < f.line <= len(lines) else ""
        verdict = click.style(f"{f.verdict:<11}", fg=_COLOR[f.verdict])
        click.echo(f"{file}:{f.line}: {verdict} {f.construct}: {f.advice}")
        click.echo(f"    {code}")
    click.echo(
        f"{counts['ok']} ok, {counts['change']} to change, {counts['unsupported']} unsupported"
    )
    if not findings:
        click.echo("no Prefect constructs found: is this a Prefect flow file?")
    elif not counts["unsupported"]:
        click.echo("after the changes: kumoflow run FILE:FLOW_FUNCTION (docs: migrate-prefect)")
