"""What the dashboard's pages show, read through the ports: runs, a run's DAG with counts per
state, a page of its tasks, a task's attempts with their logs, flows and their versions.

A run page reads the run document, its plan, and its task records a page of keys at a time (one
batch get per 500): a node of 1,000 mapped children is one box with counts, not 1,000 boxes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.contracts import Run, RunStatus, TaskRun, TaskStatus, flow_version
from orchestrator.local import attempt_log, records, run_head, run_plan, task_keys
from orchestrator.runtime import Runtime

PER_PAGE = 50
BOX_W, BOX_H, GAP_X, GAP_Y = 190, 54, 70, 18
# Which state colours a node's box: the most telling one present.
RANK = [
    TaskStatus.FAILED, TaskStatus.RUNNING, TaskStatus.RETRYING, TaskStatus.SCHEDULED,
    TaskStatus.QUEUED, TaskStatus.CANCELLED, TaskStatus.PENDING, TaskStatus.SKIPPED,
    TaskStatus.SUCCEEDED,
]  # fmt: skip


@dataclass
class Node:
    key: str
    name: str
    counts: Counter[TaskStatus]
    mapped: bool
    parents: list[str]
    x: int = 0
    y: int = 0

    @property
    def status(self) -> str:
        present = [s for s in RANK if self.counts.get(s)]
        return (present[0] if present else TaskStatus.PENDING).value.lower()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def summary(self) -> str:
        if not self.mapped and self.total == 1:
            return self.status
        parts = [f"{n} {s.value.lower()}" for s in RANK if (n := self.counts.get(s))]
        return f"{self.total} tasks: " + ", ".join(parts)


@dataclass
class Dag:
    nodes: list[Node]
    edges: list[tuple[Node, Node]]
    width: int
    height: int


@dataclass
class RunView:
    run: Run
    dag: Dag
    tasks: list[TaskRun]
    page: int
    pages: int
    total: int
    node: str | None
    counts: dict[str, int] = field(default_factory=dict)


def run_view(rt: Runtime, run_id: str, *, page: int = 1, node: str | None = None) -> RunView:
    run = run_head(rt, run_id)
    plan = run_plan(rt, run)
    keys = task_keys(plan)
    by_node: dict[str, list[str]] = {}
    for key in keys:
        by_node.setdefault(plan.tasks[key].node.key, []).append(key)
    counts: dict[str, Counter[TaskStatus]] = {n: Counter() for n in by_node}
    found: dict[str, TaskRun] = {}
    for i in range(0, len(keys), 500):  # every record once: the counts and the page's rows
        found.update(records(rt, run, keys[i : i + 500]))
    for record in found.values():
        counts[record.node][record.status] += 1
    nodes = {
        n: Node(
            key=n,
            name=plan.tasks[members[0]].node.options.name,
            counts=counts[n],
            mapped=len(members) > 1 or plan.tasks[members[0]].map_index is not None,
            parents=sorted(
                {plan.tasks[p].node.key for k in members for p in plan.tasks[k].parents}
            ),
        )
        for n, members in by_node.items()
    }
    shown = by_node.get(node, []) if node else keys
    pages = max(1, -(-len(shown) // PER_PAGE))
    page = min(max(page, 1), pages)
    chunk = shown[(page - 1) * PER_PAGE : page * PER_PAGE]
    tasks = [found[k] for k in chunk]
    totals = Counter(s.value.lower() for c in counts.values() for s in c.elements())
    return RunView(run, _layout(nodes), tasks, page, pages, len(shown), node, dict(totals))


def _layout(nodes: dict[str, Node]) -> Dag:
    """Columns by depth (longest path from a root), rows in plan order within a column."""
    depth: dict[str, int] = {}
    for key, n in nodes.items():  # plan order is topological
        depth[key] = 1 + max((depth[p] for p in n.parents if p in depth), default=-1)
    rows: dict[int, int] = {}
    for key, n in nodes.items():
        col = depth[key]
        n.x = 20 + col * (BOX_W + GAP_X)
        n.y = 20 + rows.get(col, 0) * (BOX_H + GAP_Y)
        rows[col] = rows.get(col, 0) + 1
    edges = [(nodes[p], n) for n in nodes.values() for p in n.parents if p in nodes]
    width = 40 + (max(depth.values(), default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    height = 40 + max(rows.values(), default=1) * (BOX_H + GAP_Y) - GAP_Y
    return Dag(list(nodes.values()), edges, width, height)


@dataclass
class AttemptView:
    number: int
    status: str
    flow_attempt: int
    queued_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    seconds: float | None
    worker: str | None
    code: str | None  # digest of the task's module its worker imported
    error: Any
    log: list[dict[str, Any]] | None


def task_view(rt: Runtime, run_id: str, key: str) -> tuple[Run, TaskRun, list[AttemptView]]:
    run = run_head(rt, run_id)
    record = records(rt, run, [key])[key]
    attempts = [
        AttemptView(
            number=a.number,
            status=a.status.value.lower(),
            flow_attempt=a.flow_attempt,
            queued_at=a.queued_at,
            started_at=a.started_at,
            ended_at=a.ended_at,
            seconds=(a.ended_at - a.started_at).total_seconds()
            if a.started_at and a.ended_at
            else None,
            worker=a.worker,
            code=a.code,
            error=a.error,
            log=attempt_log(rt, run, key, a.number) if a.started_at else None,
        )
        for a in reversed(record.attempts)
    ]
    return run, record, attempts


def runs_page(
    rt: Runtime,
    *,
    flow: str | None,
    status: str | None,
    trigger: str | None,
    before: datetime | None,
    limit: int = 50,
) -> tuple[list[Run], datetime | None]:
    """Newest first, filtered; the cursor of the next page (None: no more). Status and
    trigger filter pages read by flow and time, at most a few pages per view."""
    found: list[Run] = []
    cursor = before
    for _ in range(5):
        batch = rt.state.list_runs(flow or None, limit, cursor)
        for r in batch:
            if (not status or r.status.value.lower() == status) and (
                not trigger or r.trigger.kind == trigger
            ):
                found.append(r)
        if len(batch) < limit:
            return found[:limit], None
        cursor = batch[-1].created_at
        if len(found) >= limit:
            break
    found = found[:limit]
    return found, (found[-1].created_at if len(found) == limit else cursor)


@dataclass
class FlowView:
    name: str
    versions: list[tuple[str, datetime, int]]  # version, last run, runs seen
    deployed: str | None
    triggers: list[str]


def flows_view(rt: Runtime, limit: int = 500) -> list[FlowView]:
    """Flows deployed, and flows with recent runs, with the versions those runs used."""
    seen: dict[str, dict[str, tuple[datetime, int]]] = {}
    for r in rt.state.list_runs(None, limit):
        versions = seen.setdefault(r.flow, {})
        last, n = versions.get(r.flow_version, (r.created_at, 0))
        versions[r.flow_version] = (max(last, r.created_at), n + 1)
    deployed = {spec.name: spec for spec in rt.flows.deployed()}
    out = []
    for name in sorted(set(seen) | set(deployed)):
        spec = deployed.get(name)
        rows = sorted(
            ((v, at, n) for v, (at, n) in seen.get(name, {}).items()),
            key=lambda row: row[1],
            reverse=True,
        )
        triggers = (
            [_trigger(t.model_dump(exclude_none=True)) for t in spec.triggers] if spec else []
        )
        out.append(FlowView(name, rows, flow_version(spec) if spec else None, triggers))
    return out


def _trigger(t: dict[str, Any]) -> str:
    kind = t.pop("kind", "trigger")
    return f"{kind}: " + ", ".join(f"{k}={v}" for k, v in t.items() if v not in ({}, [], ""))


def can_retry(run: Run) -> bool:
    return run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
