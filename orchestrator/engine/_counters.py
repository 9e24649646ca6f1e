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

A run-time map V counts as one parent (`done`) of each consumer, and adds its children to
wait for (`more`); its children arrive as `mdone`, in shards of SHARD by child index when V is
wide. A consumer is decided when `done` reaches its static target and `mdone` reaches `more`:
V arrives only after creating its children, so `more` is final by then. A producer's arrival
at a run-time map brings the list's length (`width`), reported by its worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.contracts import Run, TaskRun, TaskStatus
from orchestrator.engine._plan import Plan
from orchestrator.engine._rules import blocks, not_taken

S = TaskStatus
SHARD = 100
# A commit returns only the fields it increments (Firestore's transform results), so every
# write to a top counter increments each field its decision reads, by 0 where unchanged.
TOP_FIELDS = ("done", "bad", "mdone", "more", "need", "width")
Increments = dict[str, dict[str, int]]


def run_counter(flow_attempt: int) -> str:
    return f"run.{flow_attempt}"


def fanin_counter(flow_attempt: int, child: str) -> str:
    return f"fanin.{flow_attempt}.{child}"


def _shard(top: str, position: int, width: int, flow_attempt: int) -> str:
    return top if width <= SHARD or flow_attempt > 1 else f"shard.{position // SHARD}.{top}"


def _part(width: int, flow_attempt: int) -> int:
    """How many arrivals a run-time map's `width` children make at a consumer's top counter."""
    return width if width <= SHARD or flow_attempt > 1 else -(-width // SHARD)


def _child_shard(top: str, position: int, task: TaskRun, flow_attempt: int) -> str:
    width = task.width or 0
    if width <= SHARD or flow_attempt > 1:
        return top
    return f"shard.{position}~{(task.map_index or 0) // SHARD}~{width}.{top}"


def _extra(plan: Plan, run: Run, task: TaskRun, child: str | None) -> dict[str, int]:
    """A run-time map's own arrival: its children to wait for; a producer's arrival at a
    run-time map: the length of the list it maps over."""
    out: dict[str, int] = {}
    ok = task.status is S.SUCCEEDED
    if task.key in plan.dynamic and ok and task.width:
        out["more"] = _part(task.width, run.attempt)
    source = plan.dynamic.get(child or "")
    if source is not None and source.task == task.key and ok:
        width = task.width if source.nested else task.lengths.get(child or "")
        out["width"] = width or 0
    return out


def arrive(plan: Plan, run: Run, task: TaskRun) -> Increments:
    """The counter increments of `task` having ended: bad where it keeps a child from running
    (see `blocks`), and for a leaf, bad unless it succeeded or its branch was not taken."""
    key = task.key
    out: Increments = {}
    owner = plan.map_of(key)  # a run-time map's child arrives as its map's
    if plan.is_leaf(key):
        top = run_counter(run.attempt)
        good = task.status is S.SUCCEEDED or not_taken(task)
        if owner is not None:
            shard = _child_shard(top, plan.leaf_index[owner], task, run.attempt)
            out[shard] = {"mdone": 1, "bad": int(not good)}
        else:
            shard = _shard(top, plan.leaf_index[key], len(plan.leaves), run.attempt)
            out[shard] = {"done": 1, "bad": int(not good)}
            _to_top(out, top, _extra(plan, run, task, None))
    for child in plan.children[key]:
        top = fanin_counter(run.attempt, child)
        bad = int(blocks(plan, task, child))
        if owner is not None:
            shard = _child_shard(top, plan.position[(child, owner)], task, run.attempt)
            out[shard] = {"mdone": 1, "bad": bad}
            continue
        width = len(plan.tasks[child].parents)
        shard = _shard(top, plan.position[(child, key)], width, run.attempt)
        out[shard] = {"done": 1, "bad": bad}
        _to_top(out, top, _extra(plan, run, task, child))
    return _whole_tops(out)


def _whole_tops(out: Increments) -> Increments:
    for name, deltas in out.items():
        if not name.startswith("shard."):
            for f in TOP_FIELDS:
                deltas.setdefault(f, 0)
    return out


def _to_top(out: Increments, top: str, extra: dict[str, int]) -> None:
    """`more` and `width` go to the top counter, where decisions read them (shards roll up
    only `done`, `mdone` and `bad`)."""
    if extra:
        merge(out, {top: extra})


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
    field = "done"
    if "~" in index:  # a run-time map's children: shard k of `width`
        _, k, width = (int(x) for x in index.split("~"))
        size, field = min(SHARD, width - k * SHARD), "mdone"
    else:
        static = top.startswith("run.")
        width = len(plan.leaves) if static else len(plan.tasks[_child(top)].parents)
        size = min(SHARD, width - int(index) * SHARD)
    if counts.get(field, 0) < size:
        return None
    increment = {f: 0 for f in TOP_FIELDS} | {field: 1, "bad": int(counts.get("bad", 0) > 0)}
    return Rollup(name, top, increment)


def _reached(width: int, counts: Mapping[str, int], flow_attempt: int) -> bool:
    # A flow retry's counters wait for what runs again: `need` arrivals of whole tasks and
    # `more` of run-time maps' children, both set by the retry (0 when none).
    if flow_attempt > 1:
        target = counts.get("need", 0)
    else:
        target = width if width <= SHARD else -(-width // SHARD)
    return counts.get("done", 0) >= target and counts.get("mdone", 0) >= counts.get("more", 0)


class Verdict(StrEnum):
    """What a child becomes once every parent it waits for has ended."""

    QUEUE = "queue"
    SKIP = "skip"


def decide(plan: Plan, child: str, counts: Mapping[str, int], flow_attempt: int) -> Verdict | None:
    """QUEUE or SKIP once every parent the child waits for has ended; else None."""
    if not _reached(len(plan.tasks[child].parents), counts, flow_attempt):
        return None
    return Verdict.SKIP if counts.get("bad", 0) else Verdict.QUEUE


def run_done(plan: Plan, counts: Mapping[str, int], flow_attempt: int) -> bool:
    """Every leaf (so every task) of the run's current flow attempt ended."""
    return _reached(len(plan.leaves), counts, flow_attempt)


def _child(top: str) -> str:
    return top.split(".", 2)[2]  # fanin.{attempt}.{child}
