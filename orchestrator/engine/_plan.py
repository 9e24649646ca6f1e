"""Expand a FlowSpec for one run's parameters into concrete task keys and edges (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from pydantic import JsonValue

from orchestrator.contracts import (
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
class MapSource:
    """The list a run-time map iterates: `path` into the result of task `task` (its worker
    reports the length), or, when `task` is itself a run-time map, that map's children."""

    task: str
    path: tuple[str | int, ...]
    arg: str  # the mapped argument it feeds
    nested: bool  # `task` is a run-time map: its children's results, one per child
    zipped: Mapping[str, tuple[ValueExpr, ...]] = field(default_factory=dict)  # static lists


class _Lazy(Mapping[str, "PlannedTask"]):
    """The plan's tasks: the static ones, and any child `V[i]` of a run-time map `V`, made on
    lookup (a run's width is not known when its plan is made). Iteration is the static ones."""

    def __init__(
        self, static: dict[str, PlannedTask], child: Callable[[str], PlannedTask | None]
    ) -> None:
        self._static, self._child = static, child

    def __getitem__(self, key: str) -> PlannedTask:
        found = self._static.get(key) or self._child(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._static or self._child(key) is not None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._static)

    def __len__(self) -> int:
        return len(self._static)


class _Children(Mapping[str, tuple[str, ...]]):
    """Children by task key; a run-time map's child has its map's consumers."""

    def __init__(self, static: dict[str, tuple[str, ...]], of: Callable[[str], str | None]):
        self._static, self._of = static, of

    def __getitem__(self, key: str) -> tuple[str, ...]:
        found = self._static.get(key)
        if found is None:
            parent = self._of(key)
            if parent is None:
                raise KeyError(key)
            found = self._static[parent]
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._static)

    def __len__(self) -> int:
        return len(self._static)


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
    # Run-time maps by node key. Until grown (see `grow`), such a node V stands for all of its
    # children: consumers wait for V, and V's children `V[i]` are planned on lookup.
    dynamic: Mapping[str, MapSource] = field(default_factory=dict)
    widths: Mapping[str, int] = field(default_factory=dict)  # of the maps this plan grew

    def map_of(self, key: str) -> str | None:
        """The run-time map `V` whose child `key` (`V[i]`) is; None for any other key."""
        return _split(key, self.dynamic)[0]

    def is_leaf(self, key: str) -> bool:
        parent = self.map_of(key)
        return (parent if parent is not None and key not in self.leaves else key) in self.leaves

    def sources(self, key: str) -> dict[str, MapSource]:
        """The run-time maps that iterate (part of) task `key`'s result: its worker reports
        their lengths."""
        return {
            v: m for v, m in self.dynamic.items() if m.task == key and m.task not in self.dynamic
        }


def _split(key: str, dynamic: Mapping[str, MapSource]) -> tuple[str | None, int]:
    if not key.endswith("]"):
        return None, -1
    node, _, index = key[:-1].rpartition("[")
    if node not in dynamic or not index.isdigit() or str(int(index)) != index:
        return None, -1
    return node, int(index)


def element(source: MapSource, i: int) -> ValueExpr:
    """Child i's value of a run-time map's mapped argument: resolved by that child's worker."""
    if source.nested:
        return ResultRef(node=f"{source.task}[{i}]")
    return PathValue(of=ResultRef(node=source.task), path=(*source.path, i))


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


def _dynamic_source(
    expr: ValueExpr, members: Mapping[str, tuple[str, ...]], dynamic: Mapping[str, MapSource]
) -> tuple[str, tuple[str | int, ...]] | None:
    """(producer, path) when `expr` is a list only known at run time: a task's result or part
    of it, or a run-time map's results."""
    match expr:
        case ResultRef(node=ref) if ref in dynamic or members.get(ref) == (ref,):
            return ref, ()
        case PathValue(of=ResultRef(node=ref), path=path) if ref not in dynamic and members.get(
            ref
        ) == (ref,):
            return ref, path
    return None


def _runtime_map(
    node: NodeSpec,
    params: Mapping[str, JsonValue],
    members: Mapping[str, tuple[str, ...]],
    dynamic: Mapping[str, MapSource],
) -> MapSource | None:
    found = {
        a: src
        for a in node.map_over
        if (src := _dynamic_source(node.args[a], members, dynamic)) is not None
    }
    if not found:
        return None
    if len(found) > 1:
        raise ParameterError(
            f"task {node.key!r} maps over {len(found)} lists made at run time "
            f"({', '.join(found)}); map over one and pass the others whole with unmapped(...)"
        )
    ((arg, (task, path)),) = found.items()
    zipped = {
        a: tuple(_element(node.args[a], params, members, node.key, a))
        for a in node.map_over
        if a != arg
    }
    return MapSource(task, path, arg, task in dynamic, zipped)


def expand(spec: FlowSpec, params: Mapping[str, JsonValue]) -> Plan:
    tasks: dict[str, PlannedTask] = {}
    members: dict[str, tuple[str, ...]] = {}
    dynamic: dict[str, MapSource] = {}
    for node in spec.nodes:
        upstream_nodes = {r for e in node.args.values() for r in result_refs(e)} | set(
            node.wait_for
        )
        source = _runtime_map(node, params, members, dynamic) if node.map_over else None
        if source is not None:
            dynamic[node.key] = source
        if not node.map_over or source is not None:
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
    frozen = {k: tuple(v) for k, v in children.items()}
    if dynamic and spec.options.retries:
        raise ParameterError(
            f"flow {spec.name!r} maps over lists made at run time ({', '.join(dynamic)}) and "
            "has flow retries, which do not combine yet: give its tasks retries instead"
        )

    def child(key: str) -> PlannedTask | None:
        parent, i = _split(key, dynamic)
        if parent is None:
            return None
        v, source = tasks[parent], dynamic[parent]
        args = {
            a: element(source, i)
            if a == source.arg
            else source.zipped[a][i]
            if a in source.zipped and i < len(source.zipped[a])
            else e
            for a, e in v.args.items()
        }
        return PlannedTask(key, v.node, i, args, (parent,))

    return Plan(
        spec=spec,
        tasks=_Lazy(tasks, child),
        children=_Children(frozen, lambda k: _split(k, dynamic)[0]),
        members=members,
        leaves=frozenset(leaves),
        position={(t.key, p): i for t in tasks.values() for i, p in enumerate(t.parents)},
        leaf_index={k: i for i, k in enumerate(leaves)},
        roots=tuple(k for k, t in tasks.items() if not t.parents),
        dynamic=dynamic,
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
    node = expr.node if isinstance(expr, ResultRef) else None
    if node is not None and node not in plan.dynamic and plan.members.get(node) == (node,):
        return node
    return None


def flow_serializer(plan: Plan) -> Serializer:
    """How the flow's own result is stored (see `spec_serializer`)."""
    return spec_serializer(plan.spec)


def spec_serializer(spec: FlowSpec) -> Serializer:
    """As its task's when the flow returns one (unmapped) task's result; else pickle when any
    task pickles; else JSON. Known from the spec alone: a parent flow stores a subflow's result
    the same way. A flow that says pickle stores its own result so too."""
    expr = spec.result
    if isinstance(expr, ResultRef):
        node = next((n for n in spec.nodes if n.key == expr.node), None)
        if node is not None and not node.map_over:
            return node.options.result_serializer
    pickled = any(n.options.result_serializer == "pickle" for n in spec.nodes)
    return "pickle" if pickled or spec.options.result_serializer == "pickle" else "json"
