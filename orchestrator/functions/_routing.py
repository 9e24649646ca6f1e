"""Which code bundles this task worker leaves to another worker.

A deploy that changes a flow's code keeps a worker for each earlier bundle that still has live
runs (infra/code.tf in the cloud; a process on the local stack, orchestrator.local): its push
subscription takes only the task requests carrying that bundle (the `kumoflow_code` attribute).
The current worker's subscription takes every request, so it acknowledges those it finds in
KUMOFLOW_RETAINED_CODE without running them: the retained worker got the same message. A
request for a bundle nobody keeps any more runs here, on the current code, and its attempt
records the code it ran (Attempt.code). A kept worker runs its own bundle's requests only,
even where its subscription's filter is not applied (the Pub/Sub emulator ignores filters).
"""

from __future__ import annotations

import os

from orchestrator.runtime import RETAINED_ENV, SERVES_ENV


def retained_code() -> frozenset[str]:
    """The bundles other workers serve (a deploy that changes them restarts this worker)."""
    return frozenset(c.strip() for c in os.environ.get(RETAINED_ENV, "").split(",") if c.strip())


def left_to_another(code: str | None) -> bool:
    """Whether this worker must leave a task request for `code` to another worker."""
    serves = os.environ.get(SERVES_ENV, "")
    if serves:
        return code != serves
    return code is not None and code in retained_code()
