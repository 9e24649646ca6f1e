"""What the dashboard's pages show, read through the ports: runs, a run's DAG with counts per
state, a page of its tasks, a task's attempts with their logs, flows and their versions.

A run page reads the run document, its plan, and its task records a page of keys at a time (one
batch get per 500): a node of 1,000 mapped children is one box with counts, not 1,000 boxes.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.contracts import (
    ErrorInfo,
    Run,
    RunStatus,
    TaskRun,
    TaskStatus,
    TriggerKind,
    clip,
    flow_version,
)
from orchestrator.engine import Plan
from orchestrator.local import (
    attempt_log,
    duration_text,
    elapsed,
    find_runs,
    records,
    run_head,
    run_plan,
    task_keys,
)
from orchestrator.runtime import Runtime, shown_params, user_traceback, waiting_for

PER_PAGE = 50
MAX_PARAM_CHARS = 300  # of a parameter's JSON on the run page
TIMELINE_W, TIMELINE_ROW = 720, 18  # px: the time axis, a task's row
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
    counts: Counter[TaskStatus]  # its tasks' states: a map's children, never the map itself
    mapped: bool
    parents: list[str]
    # A run-time map's own record: it grows the children and runs nothing itself, so it is
    # not counted; its state shows until the map has children.
    own: TaskRun | None = None
    x: int = 0
    y: int = 0

    @property
    def status(self) -> str:
        present = [s for s in RANK if self.counts.get(s)]
        fallback = self.own.status if self.own else TaskStatus.PENDING
        return (present[0] if present else fallback).value.lower()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def summary(self) -> str:
        if not self.mapped:
            return self.status
        if not self.total:
            return (
                f"0 children, {self.status}"
                if self.own and self.own.status.terminal
                else ("no children yet")
            )
        parts = [f"{n} {s.value.lower()}" for s in RANK if (n := self.counts.get(s))]
        noun = "child" if self.total == 1 else "children"
        return f"{self.total} {noun}: " + ", ".join(parts)


@dataclass
class Dag:
    nodes: list[Node]
    edges: list[tuple[Node, Node]]
    width: int
    height: int


@dataclass
class Bar:
    """One attempt on the timeline: waiting from `x` for `wait` px, then running for `run`."""

    attempt: int
    status: str
    x: float
    wait: float
    run: float
    title: str


@dataclass
class Timeline:
    rows: list[tuple[str, list[Bar]]]  # task key, its attempts oldest first
    ticks: list[tuple[float, str]]  # x, time since the run was created
    width: int
    height: int
    row: int = TIMELINE_ROW


@dataclass
class TaskRow:
    task: TaskRun
    seconds: float | None  # its last attempt's, so far while it runs
    slot: str | None = None  # queued in line for a slot of this concurrency key
    rate: str | None = None  # queued until its rate lets it start: "KEY:N/U until HH:MM:SS"


@dataclass
class RunView:
    run: Run
    seconds: float | None
    params: dict[str, str]  # name -> JSON text, secrets masked (runtime `shown_params`)
    dag: Dag
    tasks: list[TaskRow]
    timeline: Timeline
    page: int
    pages: int
    total: int
    node: str | None
    counts: dict[str, int] = field(default_factory=dict)


def run_view(rt: Runtime, run_id: str, *, page: int = 1, node: str | None = None) -> RunView:
    now = rt.clock.now()
    run = run_head(rt, run_id)
    plan = run_plan(rt, run)
    keys = task_keys(plan)
    found: dict[str, TaskRun] = {}
    for i in range(0, len(keys), 500):  # every record once: the counts and the page's rows
        found.update(records(rt, run, keys[i : i + 500]))
    # A run-time map's own key is no task of its own: its children are.
    tasks = [k for k in keys if k not in plan.dynamic]
    by_node: dict[str, list[str]] = {n: [] for n in plan.dynamic}
    for key in tasks:
        by_node.setdefault(plan.tasks[key].node.key, []).append(key)
    counts: dict[str, Counter[TaskStatus]] = {n: Counter() for n in by_node}
    for key in tasks:
        counts[found[key].node][found[key].status] += 1
    order = {n.key: i for i, n in enumerate(plan.spec.nodes)}
    nodes = {
        n: Node(
            key=n,
            name=plan.spec.nodes[order[n]].options.name,
            counts=counts[n],
            mapped=n in plan.dynamic or any(plan.tasks[k].map_index is not None for k in members),
            parents=_parents(plan, n, members),
            own=found.get(n) if n in plan.dynamic else None,
        )
        for n, members in sorted(by_node.items(), key=lambda item: order[item[0]])
    }
    shown = by_node.get(node, []) if node else tasks
    pages = max(1, -(-len(shown) // PER_PAGE))
    page = min(max(page, 1), pages)
    chunk = [found[k] for k in shown[(page - 1) * PER_PAGE : page * PER_PAGE]]
    totals = Counter(s.value.lower() for c in counts.values() for s in c.elements())
    waits = waiting_for(rt, run_id) if not run.status.terminal else {}
    return RunView(
        run=run,
        seconds=elapsed(run.started_at, run.ended_at, now),
        params={
            k: clip(json.dumps(v, default=str), MAX_PARAM_CHARS)
            for k, v in shown_params(plan.spec, run.params).items()
        },
        dag=_layout(nodes),
        tasks=[
            TaskRow(t, _last_seconds(t, now), waits.get(t.key), _rate_wait(plan, t, now))
            for t in chunk
        ],
        timeline=timeline(chunk, run.created_at, run.ended_at or now, now),
        page=page,
        pages=pages,
        total=len(shown),
        node=node,
        counts=dict(totals),
    )


def _rate_wait(plan: Plan, task: TaskRun, now: datetime) -> str | None:
    """A queued task told to come back later by its rate (runtime._rates sets the time)."""
    rate = plan.tasks[task.key].node.options.rate if task.key in plan.tasks else None
    at = task.next_attempt_at
    if rate is None or at is None or at <= now or task.status is not TaskStatus.QUEUED:
        return None
    return f"{rate} until {at:%H:%M:%S}"


def _parents(plan: Plan, node: str, members: list[str]) -> list[str]:
    """The nodes `node` hangs off. A run-time map's children hang off its own record, whose
    parents are the map's."""
    keys = [*members, node] if node in plan.dynamic else members
    return sorted({plan.tasks[p].node.key for k in keys for p in plan.tasks[k].parents} - {node})


def _last_seconds(task: TaskRun, now: datetime) -> float | None:
    last = task.attempts[-1] if task.attempts else None
    return elapsed(last.started_at, last.ended_at, now) if last else None


def timeline(tasks: list[TaskRun], start: datetime, end: datetime, now: datetime) -> Timeline:
    """Every attempt of `tasks` on one time axis from `start` to `end` (the run's creation and
    end, or now): its wait in the queue, then its run, each at least a pixel wide."""
    last = max(
        (a.ended_at or now for t in tasks for a in t.attempts if a.started_at or a.ended_at),
        default=end,
    )
    span = max((max(end, last) - start).total_seconds(), 1e-3)

    def x(at: datetime) -> float:
        return round(TIMELINE_W * (at - start).total_seconds() / span, 1)

    rows = []
    for t in tasks:
        bars = []
        for a in t.attempts:
            began = a.started_at or a.ended_at or now  # never started: waited until it ended
            stopped = a.ended_at or now
            took = elapsed(a.started_at, a.ended_at, now)
            ran = f", ran {duration_text(took)}" if a.started_at else ", never started"
            bars.append(
                Bar(
                    attempt=a.number,
                    status=a.status.value.lower(),
                    x=x(a.queued_at),
                    wait=max(x(began) - x(a.queued_at), 0.0),
                    run=max(x(stopped) - x(began), 1.0) if a.started_at else 0.0,
                    title=f"{t.key} attempt {a.number}: {a.status.value.lower()}, waited "
                    f"{duration_text(elapsed(a.queued_at, began, now))}{ran}",
                )
            )
        rows.append((t.key, bars))
    ticks = [(round(TIMELINE_W * f, 1), duration_text(span * f)) for f in (0, 0.25, 0.5, 0.75, 1)]
    return Timeline(rows, ticks, TIMELINE_W, TIMELINE_ROW * len(rows))


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
    execution: str | None  # a job-run attempt's Cloud Run execution
    logs_url: str | None  # and its logs (Cloud Logging; the stand-in's log file locally)
    error: ErrorInfo | None
    log: list[dict[str, Any]] | None


def task_view(rt: Runtime, run_id: str, key: str) -> tuple[Run, TaskRun, list[AttemptView]]:
    run = run_head(rt, run_id)
    record = records(rt, run, [key])[key]
    now = rt.clock.now()
    attempts = [
        AttemptView(
            number=a.number,
            status=a.status.value.lower(),
            flow_attempt=a.flow_attempt,
            queued_at=a.queued_at,
            started_at=a.started_at,
            ended_at=a.ended_at,
            seconds=elapsed(a.started_at, a.ended_at, now),
            worker=a.worker,
            code=a.code,
            execution=a.execution,
            logs_url=a.logs_url,
            error=a.error,
            log=_log(attempt_log(rt, run, key, a.number)) if a.started_at else None,
        )
        for a in reversed(record.attempts)
    ]
    return run, record, attempts


def _log(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The log with its traceback from the user's frame (the attempt's error has it whole)."""
    if entries is None:
        return None
    return [
        {**e, "message": user_traceback(str(e.get("message", ""))).text}
        if e.get("stream") == "traceback"
        else e
        for e in entries
    ]


def runs_view(
    rt: Runtime,
    *,
    flow: str | None,
    status: RunStatus | None,
    trigger: TriggerKind | None,
    before: datetime | None,
) -> tuple[list[tuple[Run, float | None]], datetime | None]:
    """A page of runs (local `find_runs`), each with its duration so far; the next cursor."""
    now = rt.clock.now()
    statuses = (status,) if status else ()
    found, cursor = find_runs(rt, flow=flow, statuses=statuses, trigger=trigger, before=before)
    return [(r, elapsed(r.started_at, r.ended_at, now)) for r in found], cursor


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
