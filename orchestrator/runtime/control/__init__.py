"""The control side: start a run, advance it one completion at a time (or the whole run, for
cancels, timeouts and resumes), and do the effects its commits stand for (the outbox). It never
runs user code: the worker side does."""

from orchestrator.runtime.control._advance import advance
from orchestrator.runtime.control._bundled import (
    MANIFEST,
    MANIFEST_ENV,
    bundled_specs,
    manifest_path,
    register_bundled,
)
from orchestrator.runtime.control._outbox import execute, flow_result, read_flow_result, request
from orchestrator.runtime.control._start import begin, requested_spec, start_run
from orchestrator.runtime.control._window import Windowed, admit, close_window, lane_id, window_id

__all__ = [
    "MANIFEST",
    "MANIFEST_ENV",
    "Windowed",
    "admit",
    "advance",
    "begin",
    "bundled_specs",
    "close_window",
    "execute",
    "flow_result",
    "lane_id",
    "manifest_path",
    "read_flow_result",
    "register_bundled",
    "request",
    "requested_spec",
    "start_run",
    "window_id",
]
