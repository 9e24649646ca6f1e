"""Expand a FlowSpec for one run's parameters into concrete task keys and edges (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pydantic import JsonValue

from contracts import (
    DictValue,
    FlowSpec,
    ListValue,
    LiteralValue,
    NodeSpec,
    ParamRef,
    PathValue,
    ResultRef,
    Serializer,
    ValueExpr,
)
from orchestrator.engine._values import project
from orchestrator.errors import ParameterError, ProjectionError


@dataclass(frozen=True, slots=True)
class PlannedTask:
    key: str
    node: NodeSpec
    map_index: int | None
    args: Mapping[str, ValueExpr]
    parents: tuple[str, ...]
    tolerated: frozenset[str] = frozenset()  # parents whose failure this task runs past
    untaken: frozenset[str] = frozenset()  # parents that may be skipped as a branch not taken


@dataclass(frozen=True, slots=True)
class Plan:
    spec: FlowSpec
    tasks: Mapping[str, PlannedTask]  # topological order
    children: Mapping[str, tuple[str, ...]]
    members: Mapping[str, tuple[str, ...]]  # node key -> task keys (mapped nodes: all children)
    leaves: frozenset[str]
    # Where a task sits among its child's parents, and among the leaves: which counter shard
    # its arrival goes to when a fan-in (or the run) is wide.
    position: Mapping[tuple[str, str], int]
    leaf_index: Mapping[str, int]
    roots: tuple[str, ...]


def result_refs(expr: ValueExpr) -> Iterator[str]:
    """Every node or task key an expression reads the result of."""
    match expr:
        case ResultRef(node=node):
            yield node
        case ListValue(items=items):
            for item in items:
                yield from result_refs(item)
        case DictValue(items=items):
            for item in items.values():
                yield from result_refs(item)
        case PathValue(of=of):
            yield from result_refs(of)
        case _:
            pass


def _element(
    expr: ValueExpr,
    params: Mapping[str, JsonValue],
    members: Mapping[str, tuple[str, ...]],
    node: str,
    arg: str,
) -> list[ValueExpr]:
    """Split a mapped argument into one expression per element."""
    match expr:
        case LiteralValue(value=list() as values):
            return [LiteralValue(value=v) for v in values]
        case ParamRef(name=name) if isinstance(params.get(name), list):
            value = params[name]
            assert isinstance(value, list)
            return [LiteralValue(value=v) for v in value]
        case ListValue(items=items):
            return list(items)
        case ResultRef(node=ref) if ref in members and members[ref] != (ref,):
            return [ResultRef(node=k) for k in members[ref]]
        case PathValue(of=ParamRef(name=name) as of, path=path):
            try:
                part = project(params.get(name), of, path)  # a list inside a parameter
            except ProjectionError as e:
                raise ParameterError(f"task {node!r} maps over {arg!r}: {e}") from e
            if isinstance(part, list):
                return [LiteralValue(value=v) for v in part]
    raise ParameterError(
        f"task {node!r} maps over argument {arg!r}, which is not a list at run start "
        f"(got {expr.model_dump_json()}); pass a list literal, a list parameter or a mapped "
        "task's result"
    )


def expand(spec: FlowSpec, params: Mapping[str, JsonValue]) -> Plan:
    tasks: dict[str, PlannedTask] = {}
    members: dict[str, tuple[str, ...]] = {}
    for node in spec.nodes:
        upstream_nodes = {r for e in node.args.values() for r in result_refs(e)} | set(
            node.wait_for
        )
        if not node.map_over:
            parents = _parents(upstream_nodes, members)
            tasks[node.key] = PlannedTask(
                node.key,
                node,
                None,
                node.args,
                parents,
                _expand(node.allow_failure, members),
                _expand(node.untaken, members),
            )
            members[node.key] = (node.key,)
            continue
        split = {a: _element(node.args[a], params, members, node.key, a) for a in node.map_over}
        lengths = {len(v) for v in split.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{a}={len(v)}" for a, v in split.items())
            raise ParameterError(
                f"task {node.key!r} maps over lists of different lengths ({sizes})"
            )
        count = lengths.pop()
        keys = []
        for i in range(count):
            args = {a: (split[a][i] if a in split else e) for a, e in node.args.items()}
            refs = {r for e in args.values() for r in result_refs(e)} | set(node.wait_for)
            key = f"{node.key}[{i}]"
            tasks[key] = PlannedTask(
                key,
                node,
                i,
                args,
                _parents(refs, members),
                _expand(node.allow_failure, members),
                _expand(node.untaken, members),
            )
            keys.append(key)
        members[node.key] = tuple(keys)
    children: dict[str, list[str]] = {k: [] for k in tasks}
    for t in tasks.values():
        for p in t.parents:
            children[p].append(t.key)
    leaves = [k for k, v in children.items() if not v]
    return Plan(
        spec=spec,
        tasks=tasks,
        children={k: tuple(v) for k, v in children.items()},
        members=members,
        leaves=frozenset(leaves),
        position={(t.key, p): i for t in tasks.values() for i, p in enumerate(t.parents)},
        leaf_index={k: i for i, k in enumerate(leaves)},
        roots=tuple(k for k, t in tasks.items() if not t.parents),
    )


def _expand(nodes: tuple[str, ...], members: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    return frozenset(k for ref in nodes for k in members.get(ref, (ref,)))


def _parents(refs: set[str], members: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for ref in sorted(refs):
        for key in members.get(ref, (ref,)):
            out[key] = None
    return tuple(out)


def task_serializer(plan: Plan, key: str) -> Serializer:
    return plan.tasks[key].node.options.result_serializer


def result_task(plan: Plan) -> str | None:
    """The task whose result is the flow's result, when the flow returns one task's result:
    then that object is the flow's result too (no copy)."""
    expr = plan.spec.result
    if isinstance(expr, ResultRef) and plan.members.get(expr.node) == (expr.node,):
        return expr.node
    return None


def flow_serializer(plan: Plan) -> Serializer:
    """How the flow's own result is stored: as its task's when it returns one task's result;
    pickle when any task pickles; else JSON."""
    own = result_task(plan)
    if own is not None:
        return task_serializer(plan, own)
    pickled = any(t.node.options.result_serializer == "pickle" for t in plan.tasks.values())
    return "pickle" if pickled else "json"
