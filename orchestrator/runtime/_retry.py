"""Retrying a step whose commit lost a race, written once.

A step reads what it needs, decides, and commits conditionally; a commit that finds a record
changed since it was read raises ConflictError and writes nothing. Then the step runs again
from its reads. When conflicts go on (a hot record, a storm of duplicates), the step gives up
the same way everywhere: ConflictError, which is retryable, so the function answers non-2xx
and Pub/Sub delivers the message again later; nothing is acknowledged half done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from orchestrator.errors import ConflictError

MAX_CONFLICTS = 20
T = TypeVar("T")


def retried(step: Callable[[], T], *, what: str, tries: int = MAX_CONFLICTS) -> T:
    """`step()`'s value once a run of it commits (or decides there is nothing to commit);
    a ConflictError from it runs it again, `tries` times at most, then gives up as above."""
    for _ in range(tries):
        try:
            return step()
        except ConflictError:
            continue
    raise ConflictError(f"{what}: gave up after {tries} write conflicts")
