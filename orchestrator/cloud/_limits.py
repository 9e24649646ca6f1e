"""What a deploy to Google Cloud refuses before anything is written: a task that runs inside the
task worker function but asks for longer than that function may run. Cloud Run cuts the
function off at its timeout, so such a task would only ever fail, late, as a lease expiry.

Deferred tasks (CloudRunJob, BigQuery queries) are exempt: their function returns as soon as
the work has started elsewhere, and their timeout covers that work, not the function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from orchestrator.contracts import FlowSpec
from orchestrator.errors import KumoflowError
from orchestrator.local import FUNCTIONS
from orchestrator.runtime import hooks_of

WORKER = "task_worker"
# The task worker function's timeout (infra/wiring.json, functions.task_worker.timeout_s).
WORKER_TIMEOUT_S = next(fn.timeout_s for fn in FUNCTIONS if fn.name == WORKER)


def _long_tasks(
    spec: FlowSpec, functions: Mapping[str, Callable[..., Any]], limit: float
) -> Iterable[str]:
    for node in spec.nodes:
        timeout = node.options.timeout_seconds
        if node.subflow is not None or timeout is None or timeout <= limit:
            continue  # a subflow node runs as a child run: its own tasks are checked below
        fn = functions.get(node.task)
        if fn is not None and hooks_of(fn) is not None:
            continue
        yield f"{spec.name}/{node.options.name} (timeout_seconds={timeout:g})"
    for child in spec.subflows.values():
        yield from _long_tasks(child, functions, limit)


def refuse_long_tasks(
    flows: Iterable[tuple[FlowSpec, Mapping[str, Callable[..., Any]]]],
    limit: float = WORKER_TIMEOUT_S,
) -> None:
    """Raise naming every function-run task whose timeout exceeds `limit`, and both fixes."""
    # dict: a child flow deployed beside the parent that runs it is named once.
    found = dict.fromkeys(n for spec, fns in flows for n in _long_tasks(spec, fns, limit))
    if found:
        raise KumoflowError(
            f"{', '.join(found)}: longer than the task worker function may run on Google "
            f"Cloud ({limit:g} s; Cloud Run stops it there). Lower the task's timeout_seconds "
            f"to at most {limit:g}, or run the work as a Cloud Run job: "
            '`@task(runtime="job")`, or a CloudRunJob (orchestrator.gcp) started by the flow, '
            "which waits for the execution without holding a function"
        )
