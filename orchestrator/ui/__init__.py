"""`kumoflow ui`: a web dashboard of runs, their DAGs, task attempts and logs, and flows, with
retry and cancel; over any Runtime (in-memory, the local stack, a deployed project).

The views are public too: what a run page shows (`run_view`: the DAG's nodes with their
children counted, the page's tasks with durations, the timeline of their attempts)."""

from orchestrator.ui._app import create_app, serve
from orchestrator.ui._views import TIMELINE_ROW, TIMELINE_W, Node, RunView, run_view, timeline

__all__ = [
    "TIMELINE_ROW",
    "TIMELINE_W",
    "Node",
    "RunView",
    "create_app",
    "run_view",
    "serve",
    "timeline",
]
