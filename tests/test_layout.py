"""The architecture as tests: public faces, layers that only import downward, no circles.

Import-linter could say the same in configuration; a small AST walk says it with no tool."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ("orchestrator", "tests", "benchmarks", "examples")
# Lower layers never import higher ones: contracts and errors, ports, engine -> adapters ->
# runtime -> sdk -> local, cloud -> cli. Same-rank packages may import each other (no circles,
# below).
RANK = {
    "orchestrator.contracts": 0,
    "orchestrator.errors": 0,
    "orchestrator.ports": 1,
    "orchestrator.engine": 2,
    "orchestrator.adapters": 3,
    "orchestrator.runtime": 4,
    "orchestrator.io": 4,
    "orchestrator.context": 4,  # the run context's face (`from orchestrator.context import ...`)
    "orchestrator.sdk": 5,
    "orchestrator.emulators": 5,
    "orchestrator.local": 6,
    "orchestrator.cloud": 6,
    "orchestrator.gcp": 6,  # Google Cloud helpers for flows: built on the sdk's @task
    "orchestrator.waits": 6,  # sleep, wait_for_event, pause: built-in deferred tasks
    "orchestrator.testing": 7,
    "orchestrator.cli": 7,
    "orchestrator.ui": 7,
    "orchestrator": 8,  # the top-level face: nothing inside the package imports it
    "orchestrator.functions": 8,  # the deployable entry points: nothing imports them
}


def _modules() -> Iterator[tuple[str, Path]]:
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and (node.module or node.level):
            module = _absolute(path, node.module or "", node.level)
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                where = ROOT / sub.replace(".", "/")
                is_module = where.with_suffix(".py").exists() or (where / "__init__.py").exists()
                yield node.lineno, sub if is_module else module


def _absolute(path: Path, module: str, level: int) -> str:
    """The absolute name of `from .<module> import` in `path` (`module` when `level` is 0)."""
    if not level:
        return module
    folder = path.relative_to(ROOT).parent.parts  # `.` is the file's own package
    return ".".join([*folder[: len(folder) - level + 1], *([module] if module else [])])


def _package(module: str) -> str:
    return (
        module
        if (ROOT / module.replace(".", "/") / "__init__.py").exists()
        else (module.rpartition(".")[0])
    )


def _private_owner(module: str) -> str | None:
    """The package a private module belongs to (`a.b._c` -> `a.b`); None for public ones."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _rank(module: str) -> int | None:
    best = None
    for prefix in RANK:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    return None if best is None else RANK[best]


def test_nothing_imports_another_packages_private_modules() -> None:
    offences = []
    for name, path in _modules():
        here = _package(name)
        for line, target in _imports(path):
            owner = _private_owner(target)
            if owner is not None and not (here == owner or here.startswith(owner + ".")):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert offences == []


# The runtime's roles: the worker side and the control side never import each other (what
# both need lives in orchestrator.runtime itself); the sweeper drives both through their faces.
ROLES = ("orchestrator.runtime.worker", "orchestrator.runtime.control")


def _role(module: str) -> str | None:
    return next((r for r in ROLES if module == r or module.startswith(r + ".")), None)


def test_worker_and_control_never_import_each_other() -> None:
    offences = []
    for name, path in _modules():
        mine = _role(name)
        for line, target in _imports(path):
            theirs = _role(target)
            if mine is not None and theirs is not None and theirs != mine:
                offences.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target}")
    assert offences == []


def test_shared_runtime_modules_import_no_role_but_through_its_face() -> None:
    """A role's private modules are its own: shared modules (and the sweeper) use faces."""
    offences = []
    for name, path in _modules():
        if _role(name) is not None:
            continue
        for line, target in _imports(path):
            role = _role(target)
            if role is not None and target not in (role, f"{role}.__init__"):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert offences == []


def test_layers_only_import_downward() -> None:
    offences = []
    for name, path in _modules():
        if not name.startswith("orchestrator") or name == "orchestrator.__main__":
            continue
        mine = _rank(name)
        for line, target in _imports(path):
            theirs = _rank(target)
            if mine is not None and theirs is not None and theirs > mine:
                offences.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target}")
    assert offences == []


def test_no_import_circles() -> None:
    graph: dict[str, set[str]] = {}
    modules = dict(_modules())
    for name, path in modules.items():
        if name.split(".")[0] in ("tests", "benchmarks", "examples"):
            continue
        graph[name] = {t for _, t in _imports(path) if t in modules and t != name}
    # A face importing its own private modules is how a face works; a private module importing
    # its own face back is a circle.
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


# The public names of every face: changing one is a decision, made here on purpose.
FACES = {
    "orchestrator": [
        "BadInputError", "ConflictError", "Flow", "FlowDefinitionError", "FlowRunError",
        "GcsObject", "InProcessRunner", "KumoflowError", "Limits", "NotFoundError",
        "ParameterError", "PubSubMessage", "RunOutcome", "SerializationError", "Task",
        "TaskRunContext", "TaskRuntime",
        "TaskRunError", "TransientError", "allow_failure", "branch", "context",
        "exponential_backoff", "flow", "get_run_logger", "on_gcs_finalize", "on_pubsub",
        "on_schedule", "run_in_process", "switch", "sync_compatible", "task",
        "task_input_hash", "unmapped",
    ],
    "orchestrator.gcp": [
        "BLOCK_TYPES", "INLINE_WAIT_S", "MASK", "BigQueryError", "Block", "CloudRunJob",
        "CloudRunJobError", "CloudRunJobResult", "DataFrameSerializationFormat",
        "GcpCredentials", "GcsBucket", "GcsObject", "SmtpNotification", "WebhookNotification",
        "bigquery_query", "run_cloud_run_job",
    ],
    "orchestrator.testing": [
        "TEST_STACK_ENV", "Backend", "MemoryBackend", "Outcome", "StackBackend", "VirtualClock",
        "memory_runtime", "stack_env", "stack_for_tests",
    ],
    # attempt_lines: the console's line per failed attempt (`kumoflow run`), for other views;
    # check_source: `kumoflow check`'s findings as data (the Prefect corpus test reads them).
    "orchestrator.cli": ["Finding", "attempt_lines", "check_source", "main"],
    # Prefect's `prefect.runtime`: `from orchestrator.context import flow_run, task_run`.
    "orchestrator.context": [
        "FlowRunInfo", "FlowRunView", "TaskRunInfo", "TaskRunView", "flow_run", "task_run",
    ],
}  # fmt: skip


@pytest.mark.parametrize("face", sorted(FACES))
def test_public_names_are_pinned(face: str) -> None:
    module = importlib.import_module(face)
    assert sorted(module.__all__) == sorted(FACES[face])
    for name in module.__all__:
        assert getattr(module, name) is not None


@pytest.mark.parametrize(
    "face",
    ["orchestrator.engine", "orchestrator.adapters", "orchestrator.runtime", "orchestrator.sdk",
     "orchestrator.local", "orchestrator.gcp", "orchestrator.cli", "orchestrator.testing",
     "orchestrator.ui", "orchestrator.contracts", "orchestrator.emulators"],
)  # fmt: skip
def test_every_face_exports_what_it_lists(face: str) -> None:
    module = importlib.import_module(face)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []
