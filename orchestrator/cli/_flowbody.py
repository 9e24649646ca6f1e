"""What of a flow body fails when kumoflow compiles it, read from the source.

A kumoflow flow body runs once, when the flow is defined, with placeholders for its parameters
and for every task's result (orchestrator.sdk `Placeholder`). A placeholder may be passed to
tasks and subflows (inside lists and dicts too), projected (`x.field`, `x["key"]`, `x[0]`),
waited on (`x.result()`, `x.wait()`), given to `branch`/`switch`/`unmapped`/`allow_failure`,
and returned. Anything that needs its value now raises FlowDefinitionError: truth (`if`,
`while`, `and`, `not`), iteration, `len`, `str`, f-strings, `format`, `%`, arithmetic,
comparisons, calling its methods, or handing it to any other function (which runs now, with
the placeholder). An object whose methods are tasks travels to the workers by name (a
module-level instance) or as data (a dataclass or pydantic model with JSON fields), so one made
in the body of anything else fails too. This module tracks which names hold placeholders
through a flow body and reports each such use at its line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

Flag = Callable[[ast.AST, str, str], None]  # (node, construct, advice): a "change" finding

# Names a placeholder may be handed to (besides the file's tasks and flows).
WIRING = frozenset({"unmapped", "allow_failure", "branch", "switch", "bigquery_query", "dict"})
_FUTURE = frozenset({"result", "wait"})  # Prefect's future methods: the value to come
_JSON_TYPES = frozenset(
    {"str", "int", "float", "bool", "None", "list", "dict", "tuple", "List", "Dict", "Tuple",
     "Optional", "Union", "Literal", "Any", "JsonValue"}
)  # fmt: skip
# Methods of a list/dict/set the body builds that store a placeholder without using it.
_STORE = frozenset({"append", "extend", "insert", "update", "setdefault", "add"})
_LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical"})
_IN_A_TASK = "do it inside a @task that takes the value as an argument"


class Kind(Enum):
    """What an expression of a flow body is while the flow is compiled."""

    VALUE = "value"  # a plain Python value (or one we know nothing about)
    PLACEHOLDER = "placeholder"  # a parameter, a task's result, or a part of one
    HOLDER = "holder"  # a list/tuple/dict literal with placeholders in it


@dataclass(frozen=True)
class ClassFacts:
    task_methods: frozenset[str]
    data: bool  # a dataclass or pydantic model whose fields are JSON types


@dataclass
class FileFacts:
    """What the whole file defines, read before any flow body is."""

    tasks: set[str] = field(default_factory=set)
    flows: set[str] = field(default_factory=set)
    classes: dict[str, ClassFacts] = field(default_factory=dict)  # classes with task methods
    instances: dict[str, str] = field(default_factory=dict)  # module-level name -> class
    blocks: set[str] = field(default_factory=set)  # local names of GcsBucket, GcpCredentials...
    imported: set[str] = field(default_factory=set)  # names from other modules: maybe tasks
    logger_calls: set[str] = field(default_factory=lambda: {"get_run_logger"})


def class_facts(node: ast.ClassDef, is_task: Callable[[ast.expr], bool]) -> ClassFacts:
    methods = frozenset(
        f.name
        for f in node.body
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(is_task(d) for d in f.decorator_list)
    )
    dataclass_ = any("dataclass" in ast.unparse(d) for d in node.decorator_list)
    # pydantic takes a task for a field unless told (`ConfigDict(ignored_types=(Task,))`)
    model = any(ast.unparse(b).endswith("BaseModel") for b in node.bases) and (
        "ignored_types" in ast.unparse(node)
    )
    fields_json = all(
        all(
            isinstance(n, ast.Constant) or (isinstance(n, ast.Name) and n.id in _JSON_TYPES)
            for n in ast.walk(s.annotation)
            if isinstance(n, ast.Name | ast.Constant)
        )
        for s in node.body
        if isinstance(s, ast.AnnAssign)
    )
    return ClassFacts(methods, (dataclass_ or model) and fields_json)


def check_flow_body(
    fn: ast.FunctionDef | ast.AsyncFunctionDef, facts: FileFacts, flag: Flag
) -> None:
    """Flag every use of a placeholder in `fn`'s body that fails when the flow is defined."""
    body = _Body(facts, flag)
    for arg in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs):
        if arg.arg not in ("self", "cls"):
            body.names[arg.arg] = Kind.PLACEHOLDER
    defaults = [*fn.args.defaults, *(d for d in fn.args.kw_defaults if d is not None)]
    for default in defaults:
        if not _json_literal(default):
            flag(
                default,
                "flow parameter default that is not JSON",
                f"`{ast.unparse(default)}`: parameters arrive as JSON, so their defaults must be "
                "JSON values; default to None (or a string) and convert inside a task",
            )
    for star in (fn.args.vararg, fn.args.kwarg):
        if star is not None:
            flag(
                fn,
                f"*{star.arg} / **{star.arg} on a flow",
                "flow parameters arrive by name as JSON: name each one",
            )
    body.statements(fn.body)


def _json_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return not isinstance(node.value, bytes | complex) and node.value is not ...
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _json_literal(node.operand)
    if isinstance(node, ast.List | ast.Tuple):
        return all(_json_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        keys_ok = all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys)
        return keys_ok and all(_json_literal(v) for v in node.values)
    return False


class _Body:
    def __init__(self, facts: FileFacts, flag: Flag) -> None:
        self.facts = facts
        self._flag = flag
        self.names: dict[str, Kind] = {}
        self.objects: dict[str, str] = {}  # local name -> class with task methods
        self.blocks: set[str] = set()  # local names holding a block
        self.loggers: set[str] = set()
        self._quiet = 0  # inside a test reported as a whole: count its failures, report none
        self._muted = 0

    def flag(self, node: ast.AST, construct: str, advice: str) -> None:
        if self._quiet:
            self._muted += 1
        else:
            self._flag(node, construct, advice)

    # statements ------------------------------------------------------------------------------

    def statements(self, stmts: list[ast.stmt]) -> None:
        for stmt in stmts:
            self.statement(stmt)

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Assign):
            kind = self.expr(stmt.value)
            for target in stmt.targets:
                self.bind(target, kind, stmt.value)
        elif isinstance(stmt, ast.AnnAssign):
            kind = self.expr(stmt.value) if stmt.value is not None else Kind.VALUE
            if stmt.value is not None:
                self.bind(stmt.target, kind, stmt.value)
        elif isinstance(stmt, ast.AugAssign):
            if Kind.PLACEHOLDER in (self.expr(stmt.value), self.expr(stmt.target)):
                self.flag(
                    stmt,
                    f"`{_symbol(stmt.op)}=` on a run-time value",
                    f"arithmetic needs the value, which exists only when the flow runs; "
                    f"{_IN_A_TASK}",
                )
        elif isinstance(stmt, ast.If):
            self.test(stmt.test, stmt, "if over a run-time value", _BRANCH)
            self.statements(stmt.body)
            self.statements(stmt.orelse)
        elif isinstance(stmt, ast.While):
            self.test(stmt.test, stmt, "while over a run-time value", _WHILE)
            self.statements(stmt.body)
            self.statements(stmt.orelse)
        elif isinstance(stmt, ast.For | ast.AsyncFor):
            over = self.iterated(stmt.iter, stmt)
            self.bind(stmt.target, over, stmt.iter)
            self.statements(stmt.body)
            self.statements(stmt.orelse)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            self.flag(
                stmt,
                "try/except in a flow body",
                "a task's failure happens when the flow runs, after the body ran, so the except "
                "never sees it: `allow_failure(x)` runs past a failure, or catch inside the task",
            )
            self.statements(stmt.body)
            for handler in stmt.handlers:
                self.statements(handler.body)
            self.statements(stmt.orelse)
            self.statements(stmt.finalbody)
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                self.expr(item.context_expr)
            self.statements(stmt.body)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            self.statements(stmt.body)  # a branch's function: traced like the body
        elif isinstance(stmt, ast.Return | ast.Expr) and stmt.value is not None:
            self.expr(stmt.value)
        else:
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.expr):
                    self.expr(child)

    def test(self, test: ast.expr, node: ast.AST, construct: str, advice: str) -> None:
        muted = self._muted
        kind = self.kind_of(test)
        if kind is Kind.PLACEHOLDER or self._muted > muted:
            self.flag(node, construct, advice)

    def iterated(self, it: ast.expr, node: ast.AST) -> Kind:
        """What iterating over `it` gives each time."""
        kind = self.expr(it)
        if kind is Kind.PLACEHOLDER:
            self.flag(node, "for loop over a run-time value", _MAP)
            return Kind.PLACEHOLDER
        return Kind.PLACEHOLDER if kind is Kind.HOLDER else Kind.VALUE

    def bind(self, target: ast.expr, kind: Kind, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.names[target.id] = kind
            self.objects.pop(target.id, None)
            self.blocks.discard(target.id)
            self.loggers.discard(target.id)
            if isinstance(value, ast.Call):
                made = _called_name(value.func)
                if made in self.facts.classes:
                    self.objects[target.id] = made
                if made in self.facts.blocks or _called_name(value.func, 1) in self.facts.blocks:
                    self.blocks.add(target.id)
                if made in self.facts.logger_calls:
                    self.loggers.add(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            if kind is Kind.PLACEHOLDER:
                self.flag(
                    target,
                    "unpacking a run-time value",
                    f"`{ast.unparse(target)} = ...` iterates over a value that exists only when "
                    "the flow runs; index it instead (`x[0]`, `x[1]`) and pass the parts on",
                )
            parts = value.elts if isinstance(value, ast.Tuple | ast.List) else []
            for i, elt in enumerate(target.elts):
                if i < len(parts) and len(parts) == len(target.elts):
                    self.bind(elt, self.kind_of(parts[i]), parts[i])
                else:
                    self.bind(elt, Kind.PLACEHOLDER if kind is not Kind.VALUE else Kind.VALUE, elt)

    # expressions -----------------------------------------------------------------------------

    def kind_of(self, node: ast.expr) -> Kind:
        """An expression's kind without reporting anything (it was evaluated already)."""
        self._quiet += 1
        try:
            return self.expr(node)
        finally:
            self._quiet -= 1

    def expr(self, node: ast.expr) -> Kind:
        if isinstance(node, ast.Name):
            return self.names.get(node.id, Kind.VALUE)
        if isinstance(node, ast.Constant):
            return Kind.VALUE
        if isinstance(node, ast.Attribute):
            return Kind.PLACEHOLDER if self.expr(node.value) is Kind.PLACEHOLDER else Kind.VALUE
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.JoinedStr):
            for part in node.values:
                if (
                    isinstance(part, ast.FormattedValue)
                    and self.expr(part.value) is Kind.PLACEHOLDER
                ):
                    self.flag(
                        part.value,
                        "f-string over a run-time value",
                        f"`{ast.unparse(part.value)}` exists only when the flow runs, so the "
                        f"f-string cannot format it while the flow is defined; {_IN_A_TASK} "
                        "(or pass the parts to the task that needs the text)",
                    )
            return Kind.VALUE
        if isinstance(node, ast.BinOp):
            left, right = self.expr(node.left), self.expr(node.right)
            text = isinstance(node.op, ast.Mod) and _stringy(node.left)
            if Kind.PLACEHOLDER in (left, right) or (text and right is Kind.HOLDER):
                what = "`%` formatting" if text else f"`{_symbol(node.op)}`"
                self.flag(
                    node,
                    f"{what} over a run-time value",
                    f"`{ast.unparse(node)}` needs the value, which exists only when the flow "
                    f"runs; {_IN_A_TASK}",
                )
            return Kind.VALUE
        if isinstance(node, ast.Compare):
            kinds = [self.expr(node.left), *(self.expr(c) for c in node.comparators)]
            if Kind.PLACEHOLDER in kinds:
                self.flag(
                    node,
                    "comparison with a run-time value",
                    f"`{ast.unparse(node)}` is decided when the flow is defined, before the "
                    f"value exists; compare inside a task, and choose tasks with {_CHOOSE}",
                )
            return Kind.VALUE
        if isinstance(node, ast.IfExp):
            self.test(node.test, node, "conditional expression over a run-time value", _BRANCH)
            branches = {self.expr(node.body), self.expr(node.orelse)}
            return Kind.PLACEHOLDER if Kind.PLACEHOLDER in branches else Kind.VALUE
        if isinstance(node, ast.BoolOp | ast.UnaryOp):
            operands = node.values if isinstance(node, ast.BoolOp) else [node.operand]
            if Kind.PLACEHOLDER in [self.expr(o) for o in operands]:
                self.flag(
                    node,
                    "truth or sign of a run-time value",
                    f"`{ast.unparse(node)}` needs the value, which exists only when the flow "
                    f"runs; use {_CHOOSE}, or {_IN_A_TASK}",
                )
            return Kind.VALUE
        if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
            items = node.values if isinstance(node, ast.Dict) else node.elts
            kinds = [self.expr(i) for i in items]
            if isinstance(node, ast.Dict):
                kinds += [self.expr(k) for k in node.keys if k is not None]
            return Kind.HOLDER if any(k is not Kind.VALUE for k in kinds) else Kind.VALUE
        if isinstance(node, ast.Starred):
            if self.expr(node.value) is Kind.PLACEHOLDER:
                self.flag(node, "unpacking a run-time value", "pass the value itself, not `*value`")
            return Kind.VALUE
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            for gen in node.generators:
                self.bind(gen.target, self.iterated(gen.iter, gen.iter), gen.iter)
                for cond in gen.ifs:
                    self.test(cond, cond, "comprehension condition over a run-time value", _BRANCH)
            produced = (
                [self.expr(node.key), self.expr(node.value)]
                if isinstance(node, ast.DictComp)
                else [self.expr(node.elt)]
            )
            return Kind.HOLDER if any(k is not Kind.VALUE for k in produced) else Kind.VALUE
        if isinstance(node, ast.Await):
            self.flag(node, "await in a flow body", "call the task without await")
            return self.expr(node.value)
        if isinstance(node, ast.Lambda | ast.NamedExpr):
            return Kind.VALUE
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child)
        return Kind.VALUE

    def subscript(self, node: ast.Subscript) -> Kind:
        value = self.expr(node.value)
        index = node.slice
        index_kind = self.expr(index) if not isinstance(index, ast.Slice) else Kind.VALUE
        if value is Kind.PLACEHOLDER:
            if isinstance(index, ast.Slice) or index_kind is Kind.PLACEHOLDER:
                self.flag(
                    node,
                    "slice or run-time index of a run-time value",
                    f"`{ast.unparse(node)}`: only a fixed key or index projects a task's result "
                    f"(`x['key']`, `x[0]`); {_IN_A_TASK}",
                )
                return Kind.VALUE
            return Kind.PLACEHOLDER
        if index_kind is Kind.PLACEHOLDER:
            self.flag(
                node,
                "indexing with a run-time value",
                f"`{ast.unparse(node)}` needs the index now; {_IN_A_TASK}",
            )
            return Kind.VALUE
        return Kind.PLACEHOLDER if value is Kind.HOLDER else Kind.VALUE

    # calls -------------------------------------------------------------------------------------

    def _makes_placeholder(self, call: ast.Call) -> bool:
        """A call that adds a node to the DAG (a task, a subflow, a gate, a task method)."""
        func = call.func
        if _called_name(func) in ("branch", "switch", "bigquery_query"):
            return True
        if isinstance(func, ast.Attribute) and func.attr in ("submit", "map"):
            return self._task_like(func.value)
        return self._task_like(func)

    def _task_like(self, node: ast.expr) -> bool:
        """`node` is a task or flow: by name, `t.with_options(...)`, a task method."""
        if isinstance(node, ast.Name):
            return node.id in self.facts.tasks or node.id in self.facts.flows
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            return node.func.attr == "with_options" and self._task_like(node.func.value)
        if isinstance(node, ast.Attribute):
            cls = self._class_of(node.value)
            return cls is not None and node.attr in self.facts.classes[cls].task_methods
        return False

    def _class_of(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self.objects:
                return self.objects[node.id]
            if node.id in self.facts.instances and node.id not in self.names:
                return self.facts.instances[node.id]
            if node.id in self.facts.classes:
                return node.id  # a classmethod / staticmethod task through the class
        if isinstance(node, ast.Call) and _called_name(node.func) in self.facts.classes:
            return _called_name(node.func)
        return None

    def call(self, node: ast.Call) -> Kind:
        func = node.func
        name = _called_name(func)
        if isinstance(func, ast.Attribute) and self.expr(func.value) is Kind.PLACEHOLDER:
            self.args(node)
            if func.attr in _FUTURE:
                return Kind.PLACEHOLDER
            self.flag(
                node,
                "calling a method of a run-time value",
                f"`{ast.unparse(node)}`: the value exists only when the flow runs (a task's "
                f"result or a parameter is a placeholder here); {_IN_A_TASK}",
            )
            return Kind.VALUE
        if isinstance(func, ast.Call):
            self.expr(func)
        made = name in self.facts.classes
        if made:
            self.construct(node, name)
        if self._makes_placeholder(node):
            self.args(node)
            return Kind.PLACEHOLDER
        kinds = self.args(node)
        if name in WIRING:
            return Kind.HOLDER if Kind.PLACEHOLDER in kinds else Kind.VALUE
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.attr in _STORE
            and func.value.id not in self.blocks
        ):
            if Kind.PLACEHOLDER in kinds or Kind.HOLDER in kinds:
                self.names[func.value.id] = Kind.HOLDER  # a collection of placeholders now
            return Kind.VALUE
        if isinstance(func, ast.Attribute) and self._is_block(func.value, func.attr):
            self.flag(
                node,
                f"{ast.unparse(func)}(...) in a flow body",
                "a block's method reads or writes when it is called, and a flow body runs once, "
                "when the flow is defined (kumoflow raises FlowDefinitionError); call it inside a "
                "task that takes the block (`@task def step(bucket: GcsBucket): ...`)",
            )
            return Kind.VALUE
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            receiver = func.value.id
            if receiver in self.loggers and func.attr in _LOG_METHODS and Kind.PLACEHOLDER in kinds:
                self.flag(
                    node,
                    "logging a run-time value in a flow body",
                    "the flow body runs once, when the flow is defined, before any value exists; "
                    "log inside the task that has it (`get_run_logger()` there)",
                )
                return Kind.VALUE
        if Kind.PLACEHOLDER in kinds and not made:
            what = "print" if name == "print" else f"{ast.unparse(func)}(...)"
            elsewhere = {name, _called_name(func, 1)} & self.facts.imported
            self.flag(
                node,
                f"{what} over a run-time value",
                f"`{ast.unparse(func)}` runs now, while the flow is defined, and gets a "
                "placeholder instead of the value (kumoflow raises FlowDefinitionError when it "
                f"is used); {_IN_A_TASK}"
                + (" (`@task(log_prints=True)` logs a task's prints)" if name == "print" else "")
                + (
                    f"; unless `{ast.unparse(func)}` is a @task or @flow (check reads this file "
                    "only, and a task from another module takes run-time values as they are)"
                    if elsewhere
                    else ""
                ),
            )
            if elsewhere:
                return Kind.PLACEHOLDER  # if it is a task, what it returns is one
        return Kind.VALUE

    def _is_block(self, node: ast.expr, method: str) -> bool:
        """`node.method(...)` calls a block's method: on a name holding one, on one made or
        loaded right there, or on the class (but for `load`)."""
        if isinstance(node, ast.Name):
            return node.id in self.blocks or (
                node.id in self.facts.blocks and method not in ("load", "model_validate")
            )
        return (
            isinstance(node, ast.Call)
            and self.facts.blocks.intersection(
                (_called_name(node.func), _called_name(node.func, 1))
            )
            != set()
        )

    def args(self, node: ast.Call) -> list[Kind]:
        kinds = [self.expr(a) for a in node.args]
        kinds += [self.expr(k.value) for k in node.keywords]
        return kinds

    def construct(self, node: ast.Call, cls: str) -> None:
        """An object of a class whose methods are tasks, made in the flow body."""
        facts = self.facts.classes[cls]
        constant = all(_json_literal(a) for a in node.args) and all(
            _json_literal(k.value) for k in node.keywords
        )
        if facts.data and constant:
            return  # carried in the DAG as its fields
        why = (
            "its fields get run-time values (placeholders)"
            if facts.data
            else "a worker (another process) cannot rebuild an object made here"
        )
        self.flag(
            node,
            f"{cls}(...) made in a flow body (its methods are tasks)",
            f"{why}: make it a module-level instance (`{_snake(cls)} = {cls}(...)` next to the "
            "class), or a @dataclass / pydantic model with JSON fields built from constants, and "
            "pass run-time values to its task methods as arguments",
        )


def _called_name(func: ast.expr, depth: int = 0) -> str:
    """`f` of `f(...)`; with depth 1, `Cls` of `Cls.load(...)`."""
    while depth and isinstance(func, ast.Attribute):
        func, depth = func.value, depth - 1
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _symbol(op: ast.operator) -> str:
    """`+` for ast.Add (the unparsed BinOp with its operands stripped)."""
    text = ast.unparse(ast.BinOp(ast.Name("a"), op, ast.Name("b")))
    return text.removeprefix("a ").removesuffix(" b")


def _stringy(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


_CHOOSE = "`branch(cond, then=..., otherwise=...)` / `switch(value, {...})`"
_BRANCH = (
    f"the body runs once, to build the DAG, so it cannot decide on a run-time value: {_CHOOSE} "
    "with a task's result (or a parameter) as the condition, or decide inside a task"
)
_WHILE = (
    "the body runs once, to build the DAG: move the loop into a task (retries with "
    "`retries=`/`retry_delay_seconds=` for polling)"
)
_MAP = (
    "the value exists only when the flow runs, so the body cannot iterate over it: "
    "`task.map(value)` runs the task once per element (over a parameter or a task's result)"
)
