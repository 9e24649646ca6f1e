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

__all__ = [
    "MANIFEST",
    "MANIFEST_ENV",
    "advance",
    "begin",
    "bundled_specs",
    "execute",
    "flow_result",
    "manifest_path",
    "read_flow_result",
    "register_bundled",
    "request",
    "requested_spec",
    "start_run",
]
