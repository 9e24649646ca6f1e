"""`@flow`: a function whose body is compiled into a DAG of task calls, run in-process when
called (or as a subflow node inside another flow), Prefect's names and defaults where Prefect
has them."""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from orchestrator.contracts import (
    FlowHooks,
    FlowOptions,
    FlowSpec,
    Hooks,
    Serializer,
    SourceRef,
    TaskOptions,
)
from orchestrator.engine import spec_serializer
from orchestrator.errors import FlowDefinitionError
from orchestrator.ports import Clock
from orchestrator.runtime import (
    DEFAULT_WORKERS,
    InProcessRunner,
    Progress,
    RunOutcome,
    compiling,
    module_digest,
    run_key,
)
from orchestrator.sdk._compile import BUILDING, Builder, flow_params, param_placeholders, to_expr
from orchestrator.sdk._decorators import StorageBlock, as_seconds, module_name, storage_name
from orchestrator.sdk._hooks import NO_HOOKS, NotificationBlock, hooks_from
from orchestrator.sdk._methods import Kind, unwrap
from orchestrator.sdk._triggers import Trigger, compile_triggers

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")


class Flow(Generic[P, R]):
    def __init__(
        self,
        fn: Callable[P, R],
        options: FlowOptions,
        triggers: Sequence[Trigger] = (),
        *,
        kind: Kind = "plain",
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        if inspect.iscoroutinefunction(fn):
            raise FlowDefinitionError(
                f"flow {options.name!r}: write the flow body as a plain `def`; it only wires "
                "tasks together (tasks themselves may be `async def`)"
            )
        self.fn = fn
        self.options = options
        self.hooks = hooks
        # The flow body only ever runs at compile time, so unlike tasks it need not be importable.
        self.ref = f"{module_name(fn)}:{fn.__qualname__}"
        self._spec: FlowSpec | None = None
        self._triggers = list(triggers)
        self._functions: dict[str, Callable[..., Any]] = {}
        self._kind = kind
        functools.update_wrapper(self, fn)

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Flow[P, R]: ...
    @overload
    def __get__(
        self: Flow[Concatenate[Any, Q], R], instance: object, owner: type[Any] | None = None
    ) -> Flow[Q, R]: ...
    def __get__(self, instance: object, owner: type[Any] | None = None) -> Any:
        """Flows as methods: bound to an instance (or a classmethod's class) the body runs
        with it when compiled; only the flow's tasks travel to workers, never the object."""
        if self._kind == "static" or isinstance(self.fn, types.MethodType):
            return self
        if self._kind == "class":
            instance = owner
        if instance is None:
            return self
        return Flow(types.MethodType(self.fn, instance), self.options, self._triggers)

    @property
    def name(self) -> str:
        return self.options.name

    def __repr__(self) -> str:
        return f"<flow {self.name!r} ({self.ref})>"

    @property
    def spec(self) -> FlowSpec:
        """The compiled DAG (computed once; the body runs with placeholders, never for real)."""
        if self._spec is None:
            self._spec = self._compile()
        return self._spec

    def _compile(self) -> FlowSpec:
        params = flow_params(self.fn, self.name)
        builder = Builder(self.name, module=self.fn.__module__, flow_options=self.options)
        token = BUILDING.set(builder)
        try:
            with compiling(self.name, self.options.log_prints):
                returned = self.fn(**param_placeholders(params))  # type: ignore[arg-type, call-arg]
        finally:
            BUILDING.reset(token)
        self._functions = builder.functions
        module, qualname = self.ref.split(":", 1)
        path = inspect.getsourcefile(self.fn)
        return FlowSpec(
            options=self.options,
            source=SourceRef(module=module, path=str(Path(path).resolve()) if path else None),
            entrypoint=qualname,
            params=params,
            nodes=tuple(builder.nodes),
            result=to_expr(returned, what=f"the return value of flow {self.name!r}"),
            triggers=compile_triggers(self.name, self._triggers, params),
            subflows=builder.subflows,
            code=_code({**builder.functions, self.ref: self.fn}),
            hooks=_hooks(self.hooks, builder.task_hooks),
        )

    def functions(self) -> dict[str, Callable[..., Any]]:
        """ref -> function of the flow and every task it calls: in-process runs import nothing
        (re-importing a script run as __main__ would run it again)."""
        _ = self.spec
        return {**self._functions, self.ref: self.fn}

    def _subflow(self, args: tuple[Any, ...], kwargs: dict[str, Any], *, mapped: bool) -> Any:
        """A node of the flow being compiled that runs this flow as a child run."""
        builder = BUILDING.get()
        assert builder is not None
        token = BUILDING.set(None)  # the child compiles on its own
        try:
            child = self.spec
        finally:
            BUILDING.reset(token)
        builder.functions.update(self.functions())
        options = TaskOptions(
            name=self.name,
            persist_result=child.options.persist_result,
            result_serializer=spec_serializer(child),
            result_storage=child.options.result_storage,
        )
        # Its result is the child's, written as the child writes it: the serializer is the
        # child's; storage and persist_result are the parent's unless the child sets them.
        own = {"result_serializer"} | {
            k for k in ("result_storage", "persist_result") if getattr(options, k) is not None
        }
        options = builder.inherit(options, keep=own)
        return builder.add(self.ref, self.fn, options, args, kwargs, mapped=mapped, subflow=child)

    def map(self, *args: Any, **kwargs: Any) -> list[R]:
        """Inside a flow: one child run per element, as `task.map` makes one task each."""
        if BUILDING.get() is None:
            raise FlowDefinitionError(f"{self.name}.map(...) can only be used inside a @flow")
        return self._subflow(args, kwargs, mapped=True)  # type: ignore[no-any-return]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run in-process and return the result; raises FlowRunError naming the failed task.
        Inside another flow's body: a subflow node, run as a child run."""
        if BUILDING.get() is not None:
            return self._subflow(args, dict(kwargs), mapped=False)  # type: ignore[no-any-return]
        try:
            bound = inspect.signature(self.fn).bind(*args, **kwargs)
        except TypeError as e:
            from orchestrator.errors import ParameterError

            raise ParameterError(f"flow {self.name!r}: {e}") from None
        outcome = run_in_process(self, dict(bound.arguments))
        return outcome.value_or_raise()  # type: ignore[no-any-return]


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...
@overload
def flow(
    __fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    version: str | None = None,
    retries: int = 0,
    timeout_seconds: float | None = None,
    persist_result: bool | None = None,
    result_storage: str | StorageBlock | None = None,
    result_serializer: Serializer | None = None,
    triggers: Sequence[Trigger] = (),
    log_prints: bool = False,
    max_active_runs: int | None = None,
    on_failure: Sequence[Callable[..., Any]] = (),
    on_completion: Sequence[Callable[..., Any]] = (),
    on_cancellation: Sequence[Callable[..., Any]] = (),
    notify: Sequence[NotificationBlock | str] = (),
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...
def flow(__fn: Callable[P, R] | None = None, **kwargs: Any) -> Any:
    """Declare a flow: its body is compiled into a DAG of task calls. A function, or a
    method called through its object (or class). Its `result_storage`, `persist_result` and
    `result_serializer` are its tasks' too, unless a task sets its own (as in Prefect)."""
    if __fn is None:
        return lambda fn: flow(fn, **kwargs)
    __fn, kind = unwrap(__fn)
    try:
        options = FlowOptions(
            name=kwargs.get("name") or __fn.__name__.replace("_", "-"),
            description=kwargs.get("description") or inspect.getdoc(__fn),
            version=kwargs.get("version"),
            retries=kwargs.get("retries", 0),
            timeout_seconds=as_seconds(kwargs.get("timeout_seconds")),
            persist_result=kwargs.get("persist_result"),
            result_storage=storage_name(kwargs.get("result_storage")),
            result_serializer=kwargs.get("result_serializer"),
            log_prints=kwargs.get("log_prints", False),
            max_active_runs=kwargs.get("max_active_runs"),
        )
        if options.max_active_runs is not None:
            run_key(options.name)  # its runs' slots are kept under a key made of its name
    except ValueError as e:
        raise FlowDefinitionError(f"@flow {__fn.__name__}: {e}") from None
    hooks = hooks_from(kwargs, f"@flow {__fn.__name__}", notify=True)
    return Flow(__fn, options, kwargs.get("triggers", ()), kind=kind, hooks=hooks)


def _hooks(own: Hooks, tasks: dict[str, Hooks]) -> FlowHooks | None:
    """The DAG's hooks: None when neither the flow nor a task of it declares any (the spec,
    and so its version, is then what it was before hooks existed)."""
    if own.empty and not tasks:
        return None
    return FlowHooks(flow=own, tasks=tasks)


def run_in_process(
    flow: Flow[Any, Any],
    params: dict[str, Any],
    *,
    clock: Clock | None = None,
    progress: Progress | None = None,
    max_workers: int = DEFAULT_WORKERS,
) -> RunOutcome:
    """Run `flow` with `params` in this process (no server, no cloud) and return its outcome."""
    with InProcessRunner(
        clock=clock, max_workers=max_workers, functions=flow.functions()
    ) as runner:
        return runner.run(flow.spec, params, progress=progress)


def _code(functions: dict[str, Callable[..., Any]]) -> dict[str, str]:
    """module -> digest of its source file, for every module these functions come from."""
    digests = {ref.partition(":")[0]: module_digest(fn) for ref, fn in functions.items()}
    return {module: digest for module, digest in sorted(digests.items()) if digest is not None}
