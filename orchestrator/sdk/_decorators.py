"""`@task`, Prefect's names and defaults where Prefect has them (`@flow` is in _flow.py)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from orchestrator.contracts import (
    Hooks,
    Rate,
    RetryPolicy,
    Serializer,
    TaskOptions,
    TaskRuntime,
    parse_rate,
)
from orchestrator.errors import BadInputError, FlowDefinitionError
from orchestrator.runtime import attach_key_function
from orchestrator.sdk._compile import BUILDING, RESULT_SETTINGS
from orchestrator.sdk._hooks import HOOK_ARGS, NO_HOOKS, function_ref, hooks_from, module_name
from orchestrator.sdk._methods import Kind, describe, unwrap

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")
_UNBOUND = object()


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """As Prefect: retry n waits backoff_factor * 2**(n-1) seconds."""

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**r for r in range(retries)]

    return delays


class Task(Generic[P, R]):
    def __init__(
        self,
        fn: Callable[P, R],
        options: TaskOptions,
        *,
        kind: Kind = "plain",
        receiver: object = _UNBOUND,
        given: frozenset[str] = frozenset(),
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self.fn = fn
        self.options = options
        self.hooks = hooks  # state hooks: recorded in the DAG of each flow that calls it
        # The result settings the task set itself; the rest it takes from its flow.
        self.given = given
        self.ref = function_ref(fn, "task")
        # A method's kind decides what it binds to; `receiver` is what it was bound to.
        self._kind = kind
        self._receiver = receiver
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<task {self.options.name!r} ({self.ref})>"

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Task[P, R]: ...
    @overload
    def __get__(
        self: Task[Concatenate[Any, Q], R], instance: object, owner: type[Any] | None = None
    ) -> Task[Q, R]: ...
    def __get__(self, instance: object, owner: type[Any] | None = None) -> Any:
        """Tasks as methods: reached through an instance (or, for a classmethod, the class)
        the task is bound to it, as a function becomes a bound method."""
        if self._kind == "static" or self._receiver is not _UNBOUND:
            return self
        if self._kind == "class":
            instance = owner
        if instance is None:
            return self
        return self._rebind(self.options, instance)

    def _rebind(self, options: TaskOptions, receiver: object) -> Task[Any, R]:
        return Task(
            self.fn, options, kind=self._kind, receiver=receiver, given=self.given, hooks=self.hooks
        )

    def _add(self, args: tuple[Any, ...], kwargs: dict[str, Any], *, mapped: bool) -> Any:
        builder = BUILDING.get()
        assert builder is not None
        receiver = None
        if self._receiver is not _UNBOUND:
            owner = self.fn.__qualname__.rpartition(".")[0]
            what = f"task {self.options.name!r} (a method of {owner})"
            spec = describe(self._receiver, what, (self.fn.__module__, builder.module))
            receiver = (spec, self._receiver)
        options = builder.inherit(self.options, keep=self.given)
        if not self.hooks.empty:
            builder.task_hooks[self.ref] = self.hooks
        return builder.add(
            self.ref, self.fn, options, args, kwargs, mapped=mapped, receiver=receiver
        )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if BUILDING.get() is None:  # outside a flow a task is just its function (or method)
            if self._receiver is not _UNBOUND:
                return self.fn(self._receiver, *args, **kwargs)  # type: ignore[arg-type]
            return self.fn(*args, **kwargs)
        return self._add(args, dict(kwargs), mapped=False)  # type: ignore[no-any-return]

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Prefect's spelling of a concurrent call: in a flow body every call is already a node
        that runs as soon as its inputs exist, so this is the call itself."""
        if BUILDING.get() is None:
            raise FlowDefinitionError(
                f"{self.options.name}.submit(...) can only be used inside a @flow"
            )
        return self(*args, **kwargs)

    def map(self, *args: Any, **kwargs: Any) -> list[R]:
        builder = BUILDING.get()
        if builder is None:
            raise FlowDefinitionError(
                f"{self.options.name}.map(...) can only be used inside a @flow"
            )
        del builder
        return self._add(args, kwargs, mapped=True)  # type: ignore[no-any-return]

    def with_options(self, **changes: Any) -> Task[P, R]:
        # A result setting given as None goes back to the flow's, as when never set.
        given = (self.given | _given(changes)) - {k for k, v in changes.items() if v is None}
        if "result_storage" in changes:
            changes["result_storage"] = storage_name(changes["result_storage"])
        if "runtime" in changes:
            changes["runtime"] = task_runtime(changes["runtime"])
        if "rate" in changes:
            changes["rate"] = rate_of(changes["rate"], f"task {self.options.name!r}")
        if "result_serializer" in changes and changes["result_serializer"] is None:
            changes["result_serializer"] = "json"
        hooks = self.hooks
        if any(arg in changes for arg in HOOK_ARGS):
            hooks = hooks_from(
                {a: changes.pop(a, None) for a in HOOK_ARGS}, f"task {self.options.name!r}"
            )
        options = self.options.model_copy(update=changes)
        return Task(
            self.fn, options, kind=self._kind, receiver=self._receiver, given=given, hooks=hooks
        )


class StorageBlock(Protocol):
    """A block that names where results go (orchestrator.gcp.GcsBucket)."""

    def __kumoflow_storage__(self) -> str: ...


def storage_name(value: str | StorageBlock | None) -> str | None:
    """`result_storage`: a bucket, gs://bucket/prefix, or a bucket block (its bucket and folder,
    read when the flow is defined: a run's result locations never change under it)."""
    return value if value is None or isinstance(value, str) else value.__kumoflow_storage__()


def _given(settings: dict[str, Any]) -> frozenset[str]:
    """The result settings among `settings` that say something (None leaves it to the flow)."""
    return frozenset(k for k in RESULT_SETTINGS if settings.get(k) is not None)


def _delays(
    value: float | Sequence[float] | Callable[[int], list[float]], retries: int
) -> float | tuple[float, ...]:
    if callable(value):
        value = value(retries)
    if isinstance(value, int | float):
        return float(value)
    return tuple(float(v) for v in value)


def task_runtime(value: TaskRuntime | str) -> TaskRuntime:
    """`runtime=`: the enum, or its value ("function", "job")."""
    try:
        return TaskRuntime(value)
    except ValueError:
        known = ", ".join(repr(r.value) for r in TaskRuntime)
        raise ValueError(f"runtime must be one of {known}, not {value!r}") from None


def as_seconds(value: float | timedelta | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


def rate_of(spec: str | Rate | None, what: str) -> Rate | None:
    """A task's `rate=`: "KEY:COUNT/UNIT" (or a Rate) as a Rate; BadInputError when malformed."""
    if spec is None or isinstance(spec, Rate):
        return spec
    if not isinstance(spec, str):
        raise BadInputError(f'{what}: rate= takes a string such as "openai:60/m", not {spec!r}')
    try:
        return parse_rate(spec)
    except ValueError as e:
        raise BadInputError(f"{what}: {e}") from None


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...
@overload
def task(
    __fn: None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay_seconds: float | Sequence[float] | Callable[[int], list[float]] = 0,
    retry_jitter_factor: float | None = None,
    retry_on: Sequence[type[BaseException]] = (Exception,),
    timeout_seconds: float | None = None,
    tags: Sequence[str] = (),
    persist_result: bool | None = None,
    result_storage: str | StorageBlock | None = None,
    result_serializer: Serializer | None = None,
    cache_key_fn: Callable[..., str | None] | None = None,
    cache_expiration: timedelta | float | None = None,
    log_prints: bool | None = None,
    concurrency: str | Callable[..., str] | None = None,
    priority: int = 0,
    runtime: TaskRuntime | str = TaskRuntime.FUNCTION,
    rate: str | Rate | None = None,
    on_failure: Sequence[Callable[..., Any]] = (),
    on_completion: Sequence[Callable[..., Any]] = (),
    on_cancellation: Sequence[Callable[..., Any]] = (),
) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(__fn: Callable[P, R] | None = None, **kwargs: Any) -> Any:
    """Declare a task: one unit of retryable work, one Pub/Sub-triggered attempt at a time.
    A function, or a method (instance, class or static) called through its object."""
    if __fn is None:
        return lambda fn: task(fn, **kwargs)
    __fn, kind = unwrap(__fn)
    retries = kwargs.get("retries", 0)
    retry_on = kwargs.get("retry_on", (Exception,))
    cache_fn = kwargs.get("cache_key_fn")
    concurrency = kwargs.get("concurrency")
    if callable(concurrency):  # a key from the inputs: the spec says only that it is computed
        params = list(inspect.signature(__fn).parameters)
        attach_key_function(__fn, concurrency, params, __fn.__name__)
    rate = rate_of(kwargs.get("rate"), f"@task {__fn.__name__}")
    try:
        options = TaskOptions(
            name=kwargs.get("name") or __fn.__name__,
            retry=RetryPolicy(
                retries=retries,
                delay_seconds=_delays(kwargs.get("retry_delay_seconds", 0), retries),
                jitter_factor=kwargs.get("retry_jitter_factor"),
                retry_on=tuple(f"{c.__module__}.{c.__qualname__}" for c in retry_on),
            ),
            timeout_seconds=kwargs.get("timeout_seconds"),
            tags=tuple(kwargs.get("tags", ())),
            persist_result=kwargs.get("persist_result"),
            result_storage=storage_name(kwargs.get("result_storage")),
            result_serializer=kwargs.get("result_serializer") or "json",
            cache_key_fn=function_ref(cache_fn, "cache_key_fn") if cache_fn else None,
            cache_expiration_seconds=as_seconds(kwargs.get("cache_expiration")),
            log_prints=kwargs.get("log_prints"),
            concurrency=None if callable(concurrency) else concurrency,
            computed_concurrency=callable(concurrency),
            priority=kwargs.get("priority", 0),
            runtime=task_runtime(kwargs.get("runtime", TaskRuntime.FUNCTION)),
            rate=rate,
        )
    except ValueError as e:
        raise FlowDefinitionError(f"@task {__fn.__name__}: {e}") from None
    hooks = hooks_from(kwargs, f"@task {__fn.__name__}")
    return Task(__fn, options, kind=kind, given=_given(kwargs), hooks=hooks)


__all__ = [
    "StorageBlock",
    "Task",
    "as_seconds",
    "exponential_backoff",
    "module_name",
    "storage_name",
    "task",
]
