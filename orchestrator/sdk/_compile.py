"""Compiling a flow body into a FlowSpec: parameters and task calls become placeholders."""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable, Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar, cast

from orchestrator.contracts import (
    DictValue,
    FlowOptions,
    FlowParam,
    FlowSpec,
    ListValue,
    LiteralValue,
    NodeSpec,
    ParamRef,
    PathValue,
    Receiver,
    ResultRef,
    TaskOptions,
    ValueExpr,
    flow_version,
)
from orchestrator.engine import result_refs
from orchestrator.errors import FlowDefinitionError


@dataclass(frozen=True, slots=True)
class Unmapped:
    value: object


def unmapped(value: object) -> Unmapped:
    """Pass `value` whole to every mapped call instead of iterating over it."""
    return Unmapped(value)


@dataclass(frozen=True, slots=True)
class AllowFailure:
    value: object


@dataclass(frozen=True, slots=True)
class Untaken:
    """Results of branches, of which all but the taken one end skipped (see `switch`)."""

    value: object


T = TypeVar("T")


def allow_failure(value: T) -> T:
    """As Prefect's: the receiving task runs even when the tasks behind `value` failed (or were
    skipped), and reads None for their results. A run whose failures are all consumed this way
    succeeds. Typed as `value` so that the receiving call type-checks as it reads."""
    return cast(T, AllowFailure(value))


class Placeholder:
    """Stands for a value known only when the flow runs: a parameter or a task's result."""

    __slots__ = ("_desc", "_expr", "_mapped")

    def __init__(self, expr: ValueExpr, desc: str, *, mapped: bool = False) -> None:
        self._expr = expr
        self._desc = desc
        self._mapped = mapped

    def __repr__(self) -> str:
        return f"<placeholder for {self._desc}>"

    def _misuse(self, op: str, hint: str = "") -> NoReturn:
        raise FlowDefinitionError(
            f"{self._desc} is only known when the flow runs, so `{op}` cannot use it while the "
            f"flow body is compiled into a DAG. {hint}Move that logic into a @task that takes "
            f"{self._desc} as an argument (the flow body may call tasks, pass results and parts "
            "of them: obj.field, res['key'], rows[0])."
        )

    def __bool__(self) -> bool:
        self._misuse(
            "if/while/and/or/not",
            "to choose which tasks run, use branch(predicate, then=..., otherwise=...) or "
            "switch(value, {...}); ",
        )

    def __iter__(self) -> NoReturn:
        self._misuse("for/unpacking")

    def __len__(self) -> int:
        self._misuse("len()")

    def __str__(self) -> str:
        self._misuse("str()")

    def __format__(self, spec: str) -> str:
        self._misuse("an f-string or format()")

    def __int__(self) -> int:
        self._misuse("int()")

    def __float__(self) -> float:
        self._misuse("float()")

    def __index__(self) -> int:
        self._misuse("indexing")

    def __getitem__(self, item: object) -> Placeholder:
        if isinstance(item, bool) or not isinstance(item, str | int):
            self._misuse("[...] with anything but a key or an index")
        return self._project(item, f"[{item!r}]")

    def __contains__(self, item: object) -> bool:
        self._misuse("in")

    def __eq__(self, other: object) -> bool:
        self._misuse("==")

    def __ne__(self, other: object) -> bool:
        self._misuse("!=")

    __hash__ = object.__hash__

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)  # Python's protocols probe dunders; keep them absent
        if name in _FUTURE_METHODS:
            return self._itself  # Prefect's future.result() / .wait(): the value to come
        return self._project(name, f".{name}")

    def _itself(self, *_: object, **__: object) -> Placeholder:
        return self

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        self._misuse("calling it (a projection is a path to a value, not a method)")

    def _project(self, step: str | int, text: str) -> Placeholder:
        """A lazy path into this value, read where a task's inputs are loaded."""
        if isinstance(self._expr, PathValue):
            expr = PathValue(of=self._expr.of, path=(*self._expr.path, step))
        else:
            expr = PathValue(of=self._expr, path=(step,))
        return Placeholder(expr, f"{self._desc}{text}")


# Methods of Prefect's futures that flow bodies call; on a placeholder they return it. A key
# with one of these names is read with `res["result"]`.
_FUTURE_METHODS = frozenset({"result", "wait"})


def _arith(op: str) -> Callable[..., NoReturn]:
    def method(self: Placeholder, *_: object) -> NoReturn:
        self._misuse(op)

    return method


for _name, _op in {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "truediv": "/",
    "floordiv": "//",
    "mod": "%",
    "pow": "**",
    "and": "&",
    "or": "|",
    "xor": "^",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "neg": "unary -",
    "pos": "unary +",
    "abs": "abs()",
    "invert": "~",
}.items():
    setattr(Placeholder, f"__{_name}__", _arith(_op))
    if _name in {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor"}:
        setattr(Placeholder, f"__r{_name}__", _arith(_op))


def to_expr(value: object, *, what: str) -> ValueExpr:
    """The expression for a value passed in a flow body; literals must be JSON."""
    if isinstance(value, Placeholder):
        return value._expr
    if isinstance(value, Unmapped):
        raise FlowDefinitionError(f"{what}: unmapped() only makes sense in task.map(...)")
    if isinstance(value, AllowFailure):
        raise FlowDefinitionError(f"{what}: allow_failure() wraps a task's argument as a whole")
    if isinstance(value, list | tuple):
        items = tuple(to_expr(v, what=what) for v in value)
        if all(isinstance(i, LiteralValue) for i in items):
            return LiteralValue(value=[i.value for i in items])  # type: ignore[union-attr]
        return ListValue(items=items)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise FlowDefinitionError(f"{what}: dict keys must be strings to travel as JSON")
        exprs = {k: to_expr(v, what=what) for k, v in value.items()}
        if all(isinstance(e, LiteralValue) for e in exprs.values()):
            return LiteralValue(value={k: e.value for k, e in exprs.items()})  # type: ignore[union-attr]
        return DictValue(items=exprs)
    as_ref = getattr(value, "__kumoflow_ref__", None)
    if callable(as_ref) and not isinstance(value, type):  # a block: by name, never its secrets
        return LiteralValue(value=as_ref())
    if callable(value) and not isinstance(value, type):
        raise FlowDefinitionError(
            f"{what} is a callable ({value!r}); inside a flow, call a @task instead of passing "
            "functions around"
        )
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise FlowDefinitionError(
            f"{what} is a {type(value).__name__}, which JSON cannot carry into the DAG; pass "
            "JSON values, parameters or task results"
        ) from e
    return LiteralValue(value=value)


# What a flow's options hand down to its nodes unless a node sets its own (as in Prefect).
RESULT_SETTINGS = ("result_storage", "persist_result", "result_serializer")


@dataclass
class Builder:
    flow_name: str
    module: str = ""  # the flow's module: where a method's module-level object may live
    flow_options: FlowOptions | None = None  # the result settings its nodes inherit
    nodes: list[NodeSpec] = field(default_factory=list)
    _counts: dict[str, int] = field(default_factory=dict)
    _keys: set[str] = field(default_factory=set)
    mapped_nodes: set[str] = field(default_factory=set)
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    subflows: dict[str, FlowSpec] = field(default_factory=dict)  # by version
    # The branch being traced (gate key, label), innermost last, and each node's branch.
    gates: list[tuple[str, str]] = field(default_factory=list)
    branch_of: dict[str, tuple[str, str]] = field(default_factory=dict)

    def inherit(self, options: TaskOptions, *, keep: Collection[str] = ()) -> TaskOptions:
        """`options` with the flow's result settings (storage, persist_result, serializer)
        where the node did not set its own (`keep`: the ones it set), as Prefect's tasks take
        their flow's. Resolved here, so the DAG says where every result lives."""
        flow = self.flow_options
        if flow is None:
            return options
        update = {
            name: value
            for name in RESULT_SETTINGS
            if name not in keep and (value := getattr(flow, name)) is not None
        }
        return options.model_copy(update=update) if update else options

    def new_key(self, name: str) -> str:
        # Keys count per task name, so editing other tasks never renames this one.
        n = self._counts.get(name, 0) + 1
        self._counts[name] = n
        key = name if n == 1 else f"{name}-{n}"
        while key in self._keys:
            n += 1
            self._counts[name] = n
            key = f"{name}-{n}"
        self._keys.add(key)
        return key

    def add(
        self,
        ref: str,
        fn: Callable[..., Any],
        options: TaskOptions,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        mapped: bool,
        branches: tuple[str, ...] = (),
        receiver: tuple[Receiver, object] | None = None,
        subflow: FlowSpec | None = None,
    ) -> Placeholder:
        wait_for = kwargs.pop("wait_for", None) or ()
        name = options.name
        try:
            # A method's object fills its first parameter; the DAG carries it apart.
            bound = inspect.signature(fn).bind(
                *((receiver[1],) if receiver else ()), *args, **kwargs
            )
        except TypeError as e:
            raise FlowDefinitionError(f"task {name!r} in flow {self.flow_name!r}: {e}") from None
        if receiver is not None:
            del bound.arguments[next(iter(bound.arguments))]
        exprs: dict[str, ValueExpr] = {}
        map_over: list[str] = []
        tolerated: list[str] = []
        untaken: list[str] = []
        for param, given in bound.arguments.items():
            what = f"argument {param!r} of task {name!r}"
            value = given.value if isinstance(given, AllowFailure | Untaken) else given
            if isinstance(given, AllowFailure):
                tolerated += result_refs(to_expr(value, what=what))
            if isinstance(given, Untaken):
                untaken += result_refs(to_expr(value, what=what))
            if mapped and isinstance(value, Unmapped):
                exprs[param] = to_expr(value.value, what=what)
                continue
            exprs[param] = to_expr(value, what=what)
            if mapped and self._mappable(value, what):
                map_over.append(param)
        if mapped and not map_over:
            raise FlowDefinitionError(
                f"{name}.map(...) got nothing to map over: pass at least one list, list parameter "
                "or mapped result (wrap values meant for every call in unmapped(...))"
            )
        deps = []
        for dep in wait_for if isinstance(wait_for, list | tuple) else (wait_for,):
            if not isinstance(dep, Placeholder) or not isinstance(dep._expr, ResultRef):
                raise FlowDefinitionError(f"wait_for of task {name!r} takes task results only")
            deps.append(dep._expr.node)
        key = self.new_key(name)
        branch = self.gates[-1] if self.gates else None
        if branch is not None:
            self.branch_of[key] = branch
            upstream = {r for e in exprs.values() for r in result_refs(e)} | set(deps)
            if not any(self.branch_of.get(u) == branch for u in upstream):
                deps.append(branch[0])  # a branch's first tasks wait for its gate's choice
        self.functions[ref] = fn
        version = None
        if subflow is not None:
            version = flow_version(subflow)
            self.subflows[version] = subflow
        self.nodes.append(
            NodeSpec(
                key=key,
                task=ref,
                args=exprs,
                map_over=tuple(map_over),
                wait_for=tuple(deps),
                allow_failure=tuple(dict.fromkeys(tolerated)),
                branches=branches,
                branch=branch,
                untaken=tuple(dict.fromkeys(untaken)),
                options=options,
                receiver=receiver[0] if receiver else None,
                subflow=version,
            )
        )
        if mapped:
            self.mapped_nodes.add(key)
        return Placeholder(ResultRef(node=key), f"the result of task {key!r}", mapped=mapped)

    def _single(self, expr: ResultRef | PathValue) -> bool:
        """`expr` is (part of) one task's result, not an element of a mapped node's."""
        while isinstance(expr, PathValue):
            if not isinstance(expr.of, ResultRef | PathValue):
                return False
            expr = expr.of
        return expr.node not in self.mapped_nodes

    def _mappable(self, value: object, what: str) -> bool:
        if isinstance(value, list | tuple):
            return True
        if isinstance(value, Placeholder):
            expr = value._expr
            if isinstance(expr, ParamRef) or value._mapped:
                return True
            if isinstance(expr, PathValue) and isinstance(expr.of, ParamRef):
                return True  # part of a parameter: known when the run starts
            if isinstance(expr, ResultRef | PathValue) and self._single(expr):
                return True  # a list made at run time: the producer's worker reports its length
            raise FlowDefinitionError(
                f"{what}: cannot map over {value._desc}: a part of a mapped result is one "
                "child's value; map over the mapped result itself, or over one task's result"
            )
        return False


BUILDING: ContextVar[Builder | None] = ContextVar("kumoflow_building", default=None)


def flow_params(fn: Callable[..., Any], flow_name: str) -> tuple[FlowParam, ...]:
    params = []
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}  # unresolvable names: the annotations as written (below)
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise FlowDefinitionError(
                f"flow {flow_name!r}: parameter {p.name!r} must be a plain named parameter; "
                "flow parameters arrive by name as JSON"
            )
        required = p.default is p.empty
        default = None if required else p.default
        if not required:
            try:
                json.dumps(default, allow_nan=False)
            except (TypeError, ValueError):
                raise FlowDefinitionError(
                    f"flow {flow_name!r}: the default of parameter {p.name!r} is a "
                    f"{type(default).__name__}, which JSON cannot carry; use a JSON value"
                ) from None
        annotation = None if p.annotation is p.empty else _annotation_name(p.annotation)
        hint = hints.get(p.name, None if p.annotation is p.empty else p.annotation)
        params.append(
            FlowParam(
                name=p.name,
                required=required,
                default=default,
                annotation=annotation,
                block=block_kind(hint),
            )
        )
    return tuple(params)


def block_kind(hint: object) -> str | None:
    """The kind of the block a parameter is typed as (`GcpCredentials`, `X | None`,
    `list[X]`, `Annotated[X, ...]`), else None. A block is a class with a `kind` and a
    `__kumoflow_ref__` (orchestrator.gcp.Block and its subclasses)."""
    stack = [hint]
    while stack:
        t = stack.pop()
        if isinstance(t, type):
            kind = getattr(t, "kind", None)
            if isinstance(kind, str) and callable(getattr(t, "__kumoflow_ref__", None)):
                return kind
            continue
        stack.extend(typing.get_args(t))
    return None


def _annotation_name(annotation: object) -> str:
    if isinstance(annotation, str):
        return annotation
    if typing.get_origin(annotation) is not None and hasattr(annotation, "__qualname__"):
        # list[GcsObject] as written: a generic's __qualname__ is its origin's ("list"), and
        # its repr names every module (list[orchestrator.contracts._triggers.GcsObject]).
        return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", repr(annotation))
    return getattr(annotation, "__qualname__", repr(annotation))


def param_placeholders(params: tuple[FlowParam, ...]) -> Mapping[str, Placeholder]:
    return {p.name: Placeholder(ParamRef(name=p.name), f"parameter {p.name!r}") for p in params}
