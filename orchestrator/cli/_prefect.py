"""Read a Prefect flow file and say, construct by construct, what kumoflow runs as is, what needs
a change (and to what), and what has no counterpart. Static: the file is parsed, never imported,
so it works where Prefect is not installed.

The verdicts follow the feature table of docs/howto/migrate-prefect.md (keep the two in step).
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass
from typing import Any, Literal

from orchestrator.cli._flowbody import FileFacts, check_flow_body, class_facts
from orchestrator.cli._prefect_gcp import BLOCK_METHODS, has_name, missing_method, name_advice

Verdict = Literal["ok", "change", "unsupported"]

# `from prefect import NAME`: names kumoflow's face exports under the same name.
SAME_NAMES = frozenset({"flow", "task", "get_run_logger", "unmapped", "allow_failure"})
# Everything else imported from prefect (or a prefect submodule): (verdict, what to do instead).
NAME_RULES: dict[str, tuple[Verdict, str]] = {
    "task_input_hash": ("change", "`from orchestrator import task_input_hash`"),
    "exponential_backoff": ("change", "`from orchestrator import exponential_backoff`"),
    "flow_run": ("change", "`from orchestrator.context import flow_run`; read it in a task"),
    "task_run": ("change", "`from orchestrator.context import task_run`"),
    "get_run_context": ("change", "`from orchestrator.context import flow_run, task_run`"),
    "tags": ("change", "`@task(tags=[...])` or `task.with_options(tags=[...])`"),
    "wait": ("change", "not needed: task calls in a flow are already concurrent"),
    "serve": ("change", "triggers on the flow (`on_schedule`, `on_pubsub`) + `kumoflow deploy`"),
    "deploy": ("change", "triggers on the flow + `kumoflow deploy FILE --target gcp`"),
    "Cron": ("change", "`on_schedule(cron=..., timezone=...)` in `@flow(triggers=[...])`"),
    "Interval": ("change", "`on_schedule(cron=...)`: schedules are cron expressions"),
    "ThreadPoolTaskRunner": ("change", "remove: each task is its own function invocation"),
    "ConcurrentTaskRunner": ("change", "remove: each task is its own function invocation"),
    "SequentialTaskRunner": ("change", "remove: order tasks with `wait_for=[...]`"),
    "INPUTS": ("change", "`cache_key_fn=task_input_hash` (it keys on the task's source too)"),
    "TASK_SOURCE": ("change", "`cache_key_fn=task_input_hash`: inputs and the task's source"),
}
UNSUPPORTED_WHY = {
    "blocks": "environment variables, Secret Manager, or `SecretStr` parameters",
    "variables": "environment variables or flow parameters",
    "artifacts": "write a report to GCS from a task (`orchestrator.io.write_blob`)",
    "states": "read a run's outcome with `kumoflow runs show` or `FlowRunError`",
    "transactions": "make tasks idempotent; results are written once per task run",
    "concurrency": "no concurrency limits: cap the function's max instances in Terraform",
    "client": "`kumoflow runs list/show/cancel` (`--project` for a deployed project)",
    "events": "`on_pubsub(topic=...)` or `on_gcs_finalize(...)` triggers",
    "pause_flow_run": "split the flow in two, the second triggered by a message (`on_pubsub`)",
    "suspend_flow_run": "split the flow in two, the second triggered by a message (`on_pubsub`)",
    "resume_flow_run": "publish the message that starts the second flow (`kumoflow trigger`)",
}
GCP = (
    "`from orchestrator.gcp import ...`: GcpCredentials, GcsBucket (prefect_gcp's object "
    "methods), bigquery_query, CloudRunJob; `kumoflow check` names what else is missing"
)
BLOCK_CLASSES = frozenset(BLOCK_METHODS)

TASK_OK = frozenset(
    {
        "name", "retries", "retry_delay_seconds", "retry_jitter_factor", "timeout_seconds",
        "tags", "persist_result", "result_storage", "result_serializer", "cache_key_fn",
        "cache_expiration", "log_prints",
    }
)  # fmt: skip
FLOW_OK = frozenset(
    {"name", "description", "version", "retries", "timeout_seconds", "persist_result",
     "result_storage", "log_prints"}
)  # fmt: skip
KWARG_CHANGE = {
    "retry_condition_fn": "`retry_on=(SomeError, ...)`: the exception classes that may retry",
    "cache_policy": "`cache_key_fn=task_input_hash` (and `cache_expiration`)",
    "task_run_name": "remove: a task run is named by its key (`run/task`)",
    "flow_run_name": "remove: a run is named by its id",
    "task_runner": "remove: in the cloud each task is its own function invocation",
    "validate_parameters": "remove: parameters are always checked against the annotations",
    "retry_delay_seconds": "remove on the flow: a flow retry re-runs what failed at once",
    "result_serializer": "set it per task: `@task(result_serializer='pickle')`",
    "description": "remove on a task (the docstring stays)",
    "version": "remove on a task: the flow's content hash versions its tasks",
    "cache_result_in_memory": "remove: results always go through the blob store",
}
HOOKS = frozenset(
    {"on_completion", "on_failure", "on_cancellation", "on_crashed", "on_running",
     "on_commit", "on_rollback", "refresh_cache", "asset_deps", "viz_return_value"}
)  # fmt: skip
DEPLOY_METHODS = frozenset({"serve", "deploy", "to_deployment", "from_source"})


@dataclass(frozen=True)
class Finding:
    line: int
    verdict: Verdict
    construct: str
    advice: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_source(source: str, filename: str = "<file>") -> list[Finding]:
    """Every Prefect construct of `source` with its verdict, in line order."""
    tree = ast.parse(source, filename)
    checker = _Checker()
    checker.collect(tree)
    checker.visit(tree)
    checker.gcp_methods(tree)
    return sorted(set(checker.findings), key=lambda f: (f.line, f.construct, f.verdict))


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.decorators: dict[str, str] = {}  # local name -> "flow" | "task"
        self.flows: set[str] = set()  # functions decorated with @flow in this file
        self.facts = FileFacts()
        self.native: set[str] = set()  # decorators imported from orchestrator: options are ours
        self.gcp_names: dict[str, str] = {}  # local name -> prefect_gcp / orchestrator.gcp name

    def add(self, node: ast.AST, verdict: Verdict, construct: str, advice: str) -> None:
        self.findings.append(Finding(getattr(node, "lineno", 0), verdict, construct, advice))

    # what the file defines, read before any flow body -----------------------------------------

    def collect(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                self._import(node)
            elif isinstance(node, ast.ImportFrom):
                self._import_from(node)
        facts = self.facts
        facts.blocks = {local for local, name in self.gcp_names.items() if name in BLOCK_CLASSES}
        for node in ast.walk(tree):  # names from the user's other modules
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] not in (
                "prefect",
                "prefect_gcp",
                "orchestrator",
                "__future__",
            ):
                facts.imported.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.Import):
                facts.imported.update((a.asname or a.name).split(".")[0] for a in node.names)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                kinds = {self._kind(d)[0] for d in node.decorator_list}
                if "task" in kinds:
                    facts.tasks.add(node.name)
                if "flow" in kinds:
                    facts.flows.add(node.name)
            elif isinstance(node, ast.ClassDef):
                found = class_facts(node, lambda d: self._kind(d)[0] == "task")
                if found.task_methods:
                    facts.classes[node.name] = found
        for stmt in tree.body:  # module-level instances of classes with task methods
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
                made = stmt.value.func
                if isinstance(made, ast.Name) and made.id in facts.classes:
                    for target in stmt.targets:
                        if isinstance(target, ast.Name):
                            facts.instances[target.id] = made.id
        for stmt in tree.body:  # `fast = slow.with_options(...)`: a task too
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
                func = stmt.value.func
                if (
                    isinstance(func, ast.Attribute)
                    and func.attr == "with_options"
                    and ast.unparse(func.value) in facts.tasks | facts.flows
                ):
                    for target in stmt.targets:
                        if isinstance(target, ast.Name):
                            (
                                facts.flows
                                if ast.unparse(func.value) in facts.flows
                                else facts.tasks
                            ).add(target.id)
        self.flows = facts.flows

    # imports ---------------------------------------------------------------------------------

    def _import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            if top == "prefect":
                self.add(node, "change", f"import {alias.name}", "`import orchestrator`")
            elif top == "prefect_gcp":
                self.add(node, "change", f"import {alias.name}", GCP)

    def _import_from(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        top, _, sub = module.partition(".")
        if top in ("prefect_gcp", "orchestrator") and (top == "prefect_gcp" or sub == "gcp"):
            for alias in node.names:
                self.gcp_names[alias.asname or alias.name] = alias.name
        if top == "prefect_gcp":
            self._gcp_import(node, module)
            return
        if top == "orchestrator":  # a file converted already: read its flows the same way
            for alias in node.names:
                if alias.name in ("flow", "task") and sub in ("", "sdk"):
                    self.decorators[alias.asname or alias.name] = alias.name
                    self.native.add(alias.asname or alias.name)
            return
        if top != "prefect":
            return
        same = []
        for alias in node.names:
            if alias.name in ("flow", "task"):
                self.decorators[alias.asname or alias.name] = alias.name
            if alias.name in SAME_NAMES:
                same.append(alias.name)
            elif alias.name in NAME_RULES:
                verdict, advice = NAME_RULES[alias.name]
                self.add(node, verdict, alias.name, advice)
            elif sub.split(".")[0] in ("task_runners", "deployments", "schedules"):
                self.add(
                    node,
                    "change",
                    f"{module}.{alias.name}",
                    "remove: triggers on the flow and `kumoflow deploy` replace it",
                )
            else:
                why = UNSUPPORTED_WHY.get(sub.split(".")[0]) or UNSUPPORTED_WHY.get(alias.name)
                self.add(
                    node,
                    "unsupported",
                    f"{module}.{alias.name}",
                    why or "no counterpart in kumoflow",
                )
        if same:
            names = ", ".join(same)
            self.add(
                node,
                "change",
                f"from {module} import {names}",
                f"`from orchestrator import {names}`",
            )

    def _gcp_import(self, node: ast.ImportFrom, module: str) -> None:
        ours = [a.name for a in node.names if has_name(a.name)]
        if ours:
            names = ", ".join(ours)
            self.add(
                node,
                "change",
                f"from {module} import {names}",
                f"`from orchestrator.gcp import {names}`",
            )
        for alias in node.names:
            if not has_name(alias.name):
                self.add(node, "unsupported", f"{module}.{alias.name}", name_advice(alias.name))

    # definitions -----------------------------------------------------------------------------

    def _kind(self, deco: ast.expr) -> tuple[str | None, list[ast.keyword]]:
        call = deco if isinstance(deco, ast.Call) else None
        target = call.func if call else deco
        name = None
        if isinstance(target, ast.Name):
            name = self.decorators.get(target.id)
        elif isinstance(target, ast.Attribute) and ast.unparse(target.value) == "prefect":
            name = target.attr if target.attr in ("flow", "task") else None
        return name, (call.keywords if call else [])

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        kind = None
        for deco in node.decorator_list:
            found, keywords = self._kind(deco)
            if found is None:
                continue
            kind = found
            self._decorator(deco, found, keywords)
        if kind == "flow":
            if isinstance(node, ast.AsyncFunctionDef):
                self.add(
                    node,
                    "change",
                    f"async def {node.name} (a flow)",
                    "a plain `def`: the body only wires tasks (`await t(x)` -> `t(x)`)",
                )
            check_flow_body(node, self.facts, self._change)
            for stmt in node.body:
                self._flow_statement(stmt)
            return
        self.generic_visit(node)

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _decorator(self, deco: ast.expr, kind: str, keywords: list[ast.keyword]) -> None:
        if ast.unparse(deco).split("(")[0] in self.native:
            return
        allowed = TASK_OK if kind == "task" else FLOW_OK
        bad = False
        for kw in keywords:
            if kw.arg is None or kw.arg in allowed:
                continue
            bad = True
            if kw.arg in HOOKS:
                self.add(
                    kw,
                    "unsupported",
                    f"@{kind}({kw.arg}=...)",
                    "no state hooks: read the outcome with `kumoflow runs show`",
                )
            elif kw.arg in KWARG_CHANGE:
                self.add(kw, "change", f"@{kind}({kw.arg}=...)", KWARG_CHANGE[kw.arg])
            else:
                self.add(kw, "unsupported", f"@{kind}({kw.arg}=...)", "no counterpart")
        if not bad:
            self.add(deco, "ok", f"@{kind}", "same options in kumoflow")

    # a flow body: compiled once into a DAG --------------------------------------------------------

    def _change(self, node: ast.AST, construct: str, advice: str) -> None:
        self.add(node, "change", construct, advice)

    def _flow_statement(self, stmt: ast.stmt) -> None:
        """What a flow body does that kumoflow runs as is (and Prefect-only call options);
        what fails in it is `check_flow_body`'s."""
        if isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                if ast.unparse(item.context_expr).startswith("tags("):
                    self.add(stmt, "change", "with tags(...)", NAME_RULES["tags"][1])
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                self._flow_call(node)

    def _flow_call(self, call: ast.Call) -> None:
        func = call.func
        name = func.id if isinstance(func, ast.Name) else None
        if name in self.flows:
            self.add(call, "ok", f"subflow {name}(...)", "same: a child run the node waits on")
        elif name in ("pause_flow_run", "suspend_flow_run"):
            self.add(call, "unsupported", f"{name}(...)", UNSUPPORTED_WHY[name])
        elif isinstance(func, ast.Attribute) and func.attr in ("submit", "map"):
            self.add(call, "ok", f".{func.attr}(...)", "same in kumoflow")
        for kw in call.keywords:
            if kw.arg == "return_state":
                self.add(
                    kw,
                    "unsupported",
                    "return_state=True",
                    "a failed task fails the run; `allow_failure(x)` runs past it",
                )
            elif kw.arg == "wait_for":
                self.add(kw, "ok", "wait_for=[...]", "same in kumoflow")

    # prefect_gcp's block methods, anywhere in the file -----------------------------------------

    def gcp_methods(self, tree: ast.Module) -> None:
        """Calls of prefect_gcp block methods that kumoflow's blocks lack (or that they have
        only in sync form), on names bound to a block: made, loaded, or a typed parameter."""
        bound: dict[str, str] = {}  # `bucket` or `self.bucket` -> block class
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                cls = self._block_class(node.value.func)
                if cls is not None:
                    bound.update({ast.unparse(t): cls for t in node.targets})
            elif isinstance(node, ast.arg) and node.annotation is not None:
                for name in ast.walk(node.annotation):
                    if isinstance(name, ast.Name) and name.id in self.facts.blocks:
                        bound[node.arg] = self.gcp_names[name.id]
        awaited = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Await)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            cls = bound.get(ast.unparse(node.func.value))
            if cls is None:
                continue
            method = node.func.attr
            advice = missing_method(cls, method)
            if advice is not None:
                self.add(node, "unsupported", f"{cls}.{method}", advice)
            elif id(node) in awaited and method in BLOCK_METHODS[cls]:
                self.add(
                    node,
                    "change",
                    f"await {cls}.{method}(...)",
                    f"kumoflow's {cls} methods are sync: drop the await",
                )

    def _block_class(self, func: ast.expr) -> str | None:
        """`GcsBucket` for `GcsBucket(...)` and `GcsBucket.load(...)`."""
        if isinstance(func, ast.Attribute) and func.attr == "load":
            func = func.value
        if isinstance(func, ast.Name) and func.id in self.facts.blocks:
            return self.gcp_names[func.id]
        return None

    # module level ----------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in DEPLOY_METHODS:
            owner = ast.unparse(func.value)
            if owner in self.flows or owner.split("(")[0] in self.flows:
                self.add(
                    node,
                    "change",
                    f"{owner}.{func.attr}(...)",
                    "`@flow(triggers=[on_schedule(...)])` + `kumoflow deploy FILE`",
                )
        self.generic_visit(node)


def summary(findings: list[Finding]) -> dict[str, int]:
    counts = {"ok": 0, "change": 0, "unsupported": 0}
    for f in findings:
        counts[f.verdict] += 1
    return counts
