"""The DAG a flow body compiles to. Pure data: stored under its content hash, run by the engine."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, SerializerFunctionWrapHandler, model_serializer

from ._options import FlowOptions, Frozen, TaskOptions
from ._triggers import TriggerSpec


class LiteralValue(Frozen):
    kind: Literal["literal"] = "literal"
    value: JsonValue


class ParamRef(Frozen):
    kind: Literal["param"] = "param"
    name: str


class ResultRef(Frozen):
    """The result of node `node`; for a mapped node, the list of its children's results."""

    kind: Literal["result"] = "result"
    node: str


class ListValue(Frozen):
    kind: Literal["list"] = "list"
    items: tuple[ValueExpr, ...]


class DictValue(Frozen):
    kind: Literal["dict"] = "dict"
    items: dict[str, ValueExpr]


class PathValue(Frozen):
    """Part of another value: `of` then each step, an attribute or key (str) or an index (int).
    Resolved where the value is read (the consuming task's worker), never by the orchestrator."""

    kind: Literal["path"] = "path"
    of: ValueExpr
    path: tuple[str | int, ...]


ValueExpr = Annotated[
    LiteralValue | ParamRef | ResultRef | ListValue | DictValue | PathValue,
    Field(discriminator="kind"),
]


class Receiver(Frozen):
    """The object a method task is called on, rebuilt by the worker before each call.

    `instance`: a module-level object, imported by `ref` ("module:name"); `class`: the class
    itself (classmethods), imported by `ref`; `data`: a pydantic model or dataclass carried as
    its JSON fields (`data`) and validated into the class at `ref`, so its content is part of
    the flow's version."""

    kind: Literal["instance", "class", "data"]
    ref: str
    data: JsonValue = None


class NodeSpec(Frozen):
    key: str
    task: str  # "module:qualname" of the user's function
    args: dict[str, ValueExpr]  # bound to the function's parameter names
    map_over: tuple[str, ...] = ()  # args iterated element-wise; the rest are passed whole
    wait_for: tuple[str, ...] = ()  # ordering-only upstream nodes
    # Upstream nodes whose failure this task tolerates (allow_failure): it runs anyway and reads
    # None for their results.
    allow_failure: tuple[str, ...] = ()
    # A gate (branch/switch) names the branches it chooses between; a task traced inside a
    # branch names its gate and label, and is skipped when another branch is chosen.
    branches: tuple[str, ...] = ()
    branch: tuple[str, str] | None = None
    # Upstream nodes that may end skipped because their branch was not taken (read as None);
    # any other failure of theirs still blocks this task.
    untaken: tuple[str, ...] = ()
    options: TaskOptions
    receiver: Receiver | None = None  # a method's object (tasks defined as methods)
    # A flow called in a flow body: the version of the child flow (in FlowSpec.subflows) that
    # each attempt of this node runs as a child run; the child's result is this node's result.
    subflow: str | None = None


class FlowParam(Frozen):
    name: str
    required: bool
    default: JsonValue = None
    annotation: str | None = None
    # The kind of block ("gcp-credentials") the parameter is typed as: its value comes from
    # the flow's declaration only, never from a message (see runtime `refuse_blocks`).
    block: str | None = None

    @model_serializer(mode="wrap")
    def _without_unset_block(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Unset, `block` is left out: a flow without block parameters keeps its version."""
        out = handler(self)
        if isinstance(out, dict) and out.get("block") is None:
            out.pop("block", None)
        return out


class SourceRef(Frozen):
    """Where task workers import the user's code from: a module, found via `path` when given."""

    module: str
    path: str | None = None


class HookState(StrEnum):
    """The ends a state hook can be run for (Prefect's Failed, Completed, Cancelled)."""

    FAILED = "Failed"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"


class Hooks(Frozen):
    """State hooks of a flow or a task ("module:qualname" of each function), run by a worker
    after the state is committed, at least once; and, for a flow, the notification blocks
    ("KIND/NAME") told of its failures."""

    on_failure: tuple[str, ...] = ()
    on_completion: tuple[str, ...] = ()
    on_cancellation: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()

    def for_state(self, state: HookState) -> tuple[str, ...]:
        return {
            HookState.FAILED: self.on_failure,
            HookState.COMPLETED: self.on_completion,
            HookState.CANCELLED: self.on_cancellation,
        }[state]

    @property
    def empty(self) -> bool:
        return self == Hooks()


class FlowHooks(Frozen):
    flow: Hooks = Hooks()
    tasks: dict[str, Hooks] = Field(default_factory=dict)  # by task function ("module:qualname")


class FlowSpec(Frozen):
    options: FlowOptions
    source: SourceRef
    entrypoint: str  # qualname of the flow function
    params: tuple[FlowParam, ...]
    nodes: tuple[NodeSpec, ...]
    result: ValueExpr
    triggers: tuple[TriggerSpec, ...] = ()
    # The flows its subflow nodes run, by version: part of this flow's content (and version).
    subflows: dict[str, FlowSpec] = Field(default_factory=dict)
    # module -> digest of its source file, for the flow's module and every module its tasks
    # come from: a change of code alone is a new version (runtime `module_digest`).
    code: dict[str, str] = Field(default_factory=dict)
    # Digest of the deployed bundle of the flow's code (its folder as shipped; `kumoflow
    # deploy` sets it): its runs' task requests carry it, so each attempt reaches a worker
    # serving that code even after a later deploy. None: not deployed from a bundle.
    bundle: str | None = None
    hooks: FlowHooks | None = None  # state hooks and notifications; None: none declared

    @model_serializer(mode="wrap")
    def _without_unset_code(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Empty, `code`, `bundle` and `hooks` are left out: a spec stored before they existed
        keeps its version."""
        out = handler(self)
        if isinstance(out, dict):
            if not out.get("code"):
                out.pop("code", None)
            for name in ("bundle", "hooks"):
                if out.get(name) is None:
                    out.pop(name, None)
        return out

    @property
    def name(self) -> str:
        return self.options.name

    def canonical_json(self) -> bytes:
        return self.model_dump_json(exclude_defaults=False).encode()


def flow_version(spec: FlowSpec) -> str:
    """Content hash of a FlowSpec: its version. Equal DAGs share a version wherever they run."""
    return hashlib.sha256(spec.canonical_json()).hexdigest()[:20]


ListValue.model_rebuild()
DictValue.model_rebuild()
PathValue.model_rebuild()
FlowSpec.model_rebuild()
