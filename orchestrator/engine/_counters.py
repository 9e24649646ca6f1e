"""The counters a task's end arrives at, and what their values decide (pure).

A child's fan-in counter counts its parents that ended (`done`) and those that did not succeed
(`bad`); the run's counter does the same for its leaves. A counter reaching its target decides:
the child is queued (or skipped), the run finishes.

Wide counters are sharded so that no document takes more than SHARD increments: arrivals go to
shard `shard.{position // SHARD}.{top}`, and the writer that completes a shard rolls it up
into the top counter once (a create-only marker makes that exactly-once). Production
Firestore sustains about one write per second on one document; a 10,000-wide fan-in therefore
writes 100 shards of 100, and the top counter takes 100 increments. Flow retries (attempt > 1)
use unsharded counters whose targets the retry sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from contracts import Run, TaskRun, TaskStatus
from orchestrator.engine._plan import Plan
from orchestrator.engine._rules import blocks, not_taken

S = TaskStatus
SHARD = 100
Increments = dict[str, dict[str, int]]


def run_counter(flow_attempt: int) -> str:
    return f"run.{flow_attempt}"


def fanin_counter(flow_attempt: int, child: str) -> str:
    return f"fanin.{flow_attempt}.{child}"


def _shard(top: str, position: int, width: int, flow_attempt: int) -> str:
    return top if width <= SHARD or flow_attempt > 1 else f"shard.{position // SHARD}.{top}"


def arrive(plan: Plan, run: Run, task: TaskRun) -> Increments:
    """The counter increments of `task` having ended: bad where it keeps a child from running
    (see `blocks`), and for a leaf, bad unless it succeeded or its branch was not taken."""
    key = task.key
    out: Increments = {}
    if key in plan.leaves:
        top = run_counter(run.attempt)
        shard = _shard(top, plan.leaf_index[key], len(plan.leaves), run.attempt)
        good = task.status is S.SUCCEEDED or not_taken(task)
        out[shard] = {"done": 1, "bad": int(not good)}
    for child in plan.children[key]:
        top = fanin_counter(run.attempt, child)
        width = len(plan.tasks[child].parents)
        shard = _shard(top, plan.position[(child, key)], width, run.attempt)
        out[shard] = {"done": 1, "bad": int(blocks(plan, task, child))}
    return out


def merge(into: Increments, more: Mapping[str, Mapping[str, int]]) -> Increments:
    """Sum increments per counter: one write per counter document per commit."""
    for name, deltas in more.items():
        doc = into.setdefault(name, {})
        for field, delta in deltas.items():
            doc[field] = doc.get(field, 0) + delta
    return into


@dataclass(frozen=True, slots=True)
class Rollup:
    """A completed shard's one increment of its top counter."""

    shard: str
    top: str
    increment: dict[str, int]


def rollup(plan: Plan, name: str, counts: Mapping[str, int]) -> Rollup | None:
    """The roll-up due when shard counter `name` holds `counts`; None for a top counter or a
    shard still waiting."""
    if not name.startswith("shard."):
        return None
    _, index, top = name.split(".", 2)
    width = len(plan.leaves) if top.startswith("run.") else len(plan.tasks[_child(top)].parents)
    size = min(SHARD, width - int(index) * SHARD)
    if counts.get("done", 0) < size:
        return None
    return Rollup(name, top, {"done": 1, "bad": int(counts.get("bad", 0) > 0)})


def _target(width: int, counts: Mapping[str, int]) -> int:
    return counts.get("need", width if width <= SHARD else -(-width // SHARD))


def decide(plan: Plan, child: str, counts: Mapping[str, int]) -> str | None:
    """'queue' or 'skip' once every parent the child waits for has ended; else None."""
    if counts.get("done", 0) < _target(len(plan.tasks[child].parents), counts):
        return None
    return "skip" if counts.get("bad", 0) else "queue"


def run_done(plan: Plan, counts: Mapping[str, int]) -> bool:
    """Every leaf (so every task) of the run's current flow attempt ended."""
    return counts.get("done", 0) >= _target(len(plan.leaves), counts)


def _child(top: str) -> str:
    return top.split(".", 2)[2]  # fanin.{attempt}.{child}
