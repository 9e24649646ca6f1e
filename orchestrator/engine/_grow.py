"""Growing a plan at run time: the children of run-time maps, once their widths are known
(pure). The per-event paths never grow a plan (a child `V[i]` is planned on lookup); the
whole-run paths and a consumer's inputs do, from the widths the maps recorded."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.contracts import NO_PATH, NOT_A_LIST, ResultRef, TaskRun
from orchestrator.engine._plan import Plan, PlannedTask, _Children, _Lazy
from orchestrator.engine._values import project
from orchestrator.errors import ProjectionError


def lengths(plan: Plan, key: str, value: object) -> dict[str, int]:
    """The lengths of the lists the run-time maps over task `key`'s result iterate, reported
    with it (the orchestrator sizes the maps without reading results): NOT_A_LIST where the
    value there is not a list, NO_PATH where the path does not resolve."""
    out: dict[str, int] = {}
    for node, source in plan.sources(key).items():
        try:
            part = project(value, ResultRef(node=key), source.path)
        except ProjectionError:
            out[node] = NO_PATH
            continue
        out[node] = len(part) if isinstance(part, list | tuple) else NOT_A_LIST
    return out


def grow(plan: Plan, widths: Mapping[str, int]) -> Plan:
    """The plan with the children of the run-time maps in `widths` as ordinary tasks: what the
    whole-run paths and a consumer's inputs need. Each consumer also waits for those children."""
    if not widths:
        return plan
    widths = {**plan.widths, **widths}
    kids = {v: tuple(f"{v}[{i}]" for i in range(max(n, 0))) for v, n in widths.items()}
    tasks: dict[str, PlannedTask] = {}
    children: dict[str, list[str]] = {}
    for key in plan.tasks:
        t = plan.tasks[key]
        extra = tuple(k for p in t.parents for k in kids.get(p, ()))
        tasks[key] = t if not extra else _with_parents(t, extra, kids)
        children[key] = list(plan.children[key])
        for k in kids.get(key, ()):
            tasks[k] = plan.tasks[k]
            children[k] = list(plan.children[key])
    leaves = [k for k in tasks if not children[k]]
    return Plan(
        spec=plan.spec,
        tasks=_Lazy(tasks, lambda k: plan.tasks.get(k) if plan.map_of(k) else None),
        children=_Children({k: tuple(v) for k, v in children.items()}, plan.map_of),
        members={**plan.members, **kids},
        leaves=frozenset(leaves),
        position={(t.key, p): i for t in tasks.values() for i, p in enumerate(t.parents)},
        leaf_index={k: i for i, k in enumerate(leaves)},
        roots=plan.roots,
        dynamic=plan.dynamic,
        widths=widths,
    )


def _with_parents(
    t: PlannedTask, extra: tuple[str, ...], kids: Mapping[str, tuple[str, ...]]
) -> PlannedTask:
    def more(keys: frozenset[str]) -> frozenset[str]:
        return keys | {k for p in keys for k in kids.get(p, ())}

    parents = (*t.parents, *extra)
    return PlannedTask(
        t.key, t.node, t.map_index, t.args, parents, more(t.tolerated), more(t.untaken)
    )


def grown(plan: Plan, records: Mapping[str, TaskRun]) -> Plan:
    """`plan` grown by the widths that run-time maps among `records` have recorded."""
    widths = {k: t.width for k, t in records.items() if k in plan.dynamic and t.width is not None}
    return grow(plan, widths)
