"""Read a Prefect flow file and say, construct by construct, what kumoflow runs as is, what needs
a change (and to what), and what has no counterpart. Static: the file is parsed, never imported,
so it works where Prefect is not installed.

The verdicts follow the README's "Coming from Prefect" table (keep the two in step).
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass
from typing import Any, Literal

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
    "`from orchestrator.gcp import ...`: GcpCredentials, GcsBucket, bigquery_query, CloudRunJob "
    "(same names and shapes)"
)

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
    checker.visit(tree)
    return sorted(checker.findings, key=lambda f: (f.line, f.construct))


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.decorators: dict[str, str] = {}  # local name -> "flow" | "task"
        self.flows: set[str] = set()  # functions decorated with @flow in this file
        self._flow_depth = 0

    def add(self, node: ast.AST, verdict: Verdict, construct: str, advice: str) -> None:
        self.findings.append(Finding(getattr(node, "lineno", 0), verdict, construct, advice))

    # imports ---------------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            if top == "prefect":
                self.add(node, "change", f"import {alias.name}", "`import orchestrator`")
            elif top == "prefect_gcp":
                self.add(node, "change", f"import {alias.name}", GCP)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        top, _, sub = module.partition(".")
        if top == "prefect_gcp":
            self.add(node, "change", f"from {module} import ...", GCP)
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
            self.flows.add(node.name)
            if isinstance(node, ast.AsyncFunctionDef):
                self.add(
                    node,
                    "change",
                    f"async def {node.name} (a flow)",
                    "a plain `def`: the body only wires tasks (`await t(x)` -> `t(x)`)",
                )
            self._flow_depth += 1
            for stmt in node.body:
                self._flow_statement(stmt)
            self._flow_depth -= 1
            return
        self.generic_visit(node)

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _decorator(self, deco: ast.expr, kind: str, keywords: list[ast.keyword]) -> None:
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

    def _flow_statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.If):
            self.add(
                stmt,
                "change",
                "if in a flow body",
                "`branch(cond, then=..., otherwise=...)` or `switch(value, {...})`, "
                "or decide inside a task: the body runs once, to build the DAG",
            )
        elif isinstance(stmt, ast.For | ast.AsyncFor) and not _literal(stmt.iter):
            self.add(
                stmt,
                "change",
                "for loop over a value in a flow body",
                "`task.map(items)` (over a parameter or a task's result)",
            )
        elif isinstance(stmt, ast.While):
            self.add(stmt, "change", "while loop in a flow body", "move the loop into a task")
        elif isinstance(stmt, ast.Try):
            self.add(
                stmt,
                "change",
                "try/except in a flow body",
                "`allow_failure(x)` to run past a failure, or catch inside the task",
            )
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                if ast.unparse(item.context_expr).startswith("tags("):
                    self.add(stmt, "change", "with tags(...)", NAME_RULES["tags"][1])
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call):
                self._flow_call(node)
            elif isinstance(node, ast.Await):
                self.add(node, "change", "await in a flow body", "call the task without await")

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


def _literal(node: ast.expr) -> bool:
    """A loop the compiler unrolls: over a literal list/tuple or range() of constants."""
    if isinstance(node, ast.List | ast.Tuple):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and all(isinstance(a, ast.Constant) for a in node.args)
    )


def summary(findings: list[Finding]) -> dict[str, int]:
    counts = {"ok": 0, "change": 0, "unsupported": 0}
    for f in findings:
        counts[f.verdict] += 1
    return counts
