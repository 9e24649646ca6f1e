"""Subflows: a flow called in a flow body is a node whose attempts each run the child flow as
a run of its own.

The parent's worker claims the node's attempt as for any task, resolves its inputs (the
child's parameters), registers the child flow (content-hashed, so idempotent), starts the child
run under an id derived from the attempt, and leaves the attempt waiting without a lease: no
function waits for the child. The child's announce reports its end as the attempt's completion,
with the claim's token, and stores its result at the node's derived location. Cancelling the
parent cancels its waiting children (see the whole-run path).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from orchestrator.contracts import (
    FlowSpec,
    ParentRef,
    RunRequested,
    TaskRequested,
    TriggerInfo,
    TriggerKind,
)
from orchestrator.engine import waiting
from orchestrator.ports import Commit
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._retry import retried
from orchestrator.runtime._runtime import Runtime

_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")


def child_run_id(run_id: str, key: str, attempt: int) -> str:
    """Readable, unique per (parent run, node, attempt), and a valid run id."""
    digest = hashlib.sha256(f"{run_id}\0{key}".encode()).hexdigest()[:8]
    return f"{run_id[:64]}.{_UNSAFE.sub('-', key)[:40]}.{digest}.{attempt}"


def start_subflow(
    rt: Runtime, req: TaskRequested, spec: FlowSpec, args: Mapping[str, Any], token: str, uri: str
) -> str:
    """Start the child run of this attempt (once: the id is derived) and leave the attempt
    waiting on it. Returns the child's run id."""
    version = rt.flows.put_flow(spec)
    child = child_run_id(req.run_id, req.key, req.attempt)
    parent = ParentRef(
        run_id=req.run_id, key=req.key, attempt=req.attempt, token=token, result_uri=uri
    )
    trigger = TriggerInfo(kind=TriggerKind.SUBFLOW, source=f"{req.run_id}/{req.key}")
    request = RunRequested(flow=spec.name, flow_version=version, params=dict(args), trigger=trigger)
    rt.start(rt, request, run_id=child, parent=parent)
    try:
        _hold(rt, req, token, child)
    except Exception:  # the child runs: the node's lease expiry makes the node wait for it
        LOGGER.warning(
            "could not hold %s for its child run %s", req.key, child, exc_info=True,
            extra={"run_id": req.run_id, "task": req.key},
        )  # fmt: skip
    return child


def _hold(rt: Runtime, req: TaskRequested, token: str, child: str) -> None:
    def attempt() -> None:
        tasks, etags = rt.state.tasks(req.run_id, [req.key])
        record = tasks.get(req.key)
        held = waiting(record, req.attempt, token, child) if record else None
        if held is None:
            return  # it ended already (a fast child), or the claim was lost
        rt.state.commit(Commit(run_id=req.run_id, tasks=[(held, etags[req.key])]))

    retried(attempt, what=f"run {req.run_id}: holding {req.key!r} for its child run")
