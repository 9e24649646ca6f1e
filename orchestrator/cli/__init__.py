"""The `kumoflow` command line: one module per command group, shared output helpers."""

from orchestrator.cli._main import main
from orchestrator.cli._output import attempt_lines
from orchestrator.cli._prefect import Finding, check_source

__all__ = ["Finding", "attempt_lines", "check_source", "main"]
