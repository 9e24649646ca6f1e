"""The `kumoflow` command line: one module per command group, shared output helpers."""

from orchestrator.cli._main import main

__all__ = ["main"]
