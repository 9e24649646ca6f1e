"""`kumoflow ui`: a web dashboard of runs, their DAGs, task attempts and logs, and flows, with
retry and cancel; over any Runtime (in-memory, the local stack, a deployed project)."""

from orchestrator.ui._app import create_app, serve

__all__ = ["create_app", "serve"]
