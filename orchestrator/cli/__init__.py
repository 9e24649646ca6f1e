"""The `kumoflow` command line: one module per command group, shared output helpers."""

from orchestrator.cli._main import main
from orchestrator.cli._output import attempt_lines

__all__ = ["attempt_lines", "main"]
