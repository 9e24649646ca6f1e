"""What task code can ask about the run it is part of: `context.flow_run` / `context.task_run`
(Prefect's `prefect.runtime`), `get_run_logger()`, and `log_prints`.

The worker sets the context around each attempt's call, on every backend alike. A flow body is
compiled once into a DAG before any run exists, so there the run context is refused (it would
be baked into every run) and the logger carries the flow's name only.
"""

from __future__ import annotations

import builtins
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from orchestrator.contracts import FlowSpec, Run, TaskOptions, TriggerInfo
from orchestrator.errors import FlowDefinitionError
from orchestrator.runtime._logging import LOGGER
from orchestrator.runtime._params import masked, secret_params

RUN_LOGGER = logging.getLogger("kumoflow.run")
# What task code wrote to stdout/stderr, echoed with the run's ids (see _capture): apart from
# the run logger, which carries only what code logged (or printed under log_prints).
OUTPUT_LOGGER = logging.getLogger("kumoflow.output")
RUN_LOGGER.setLevel(logging.INFO)  # as Prefect's run loggers: INFO unless configured otherwise


@dataclass(frozen=True)
class FlowRunInfo:
    id: str
    name: str  # runs have no generated name of their own: the run id
    flow_name: str
    flow_version: str
    parameters: Mapping[str, Any]  # secret parameters masked
    trigger: TriggerInfo
    scheduled_start_time: datetime  # a schedule's slot; otherwise when the run was created
    run_count: int  # the flow attempt, from 1 (flow retries)


@dataclass(frozen=True)
class TaskRunInfo:
    id: str  # "{run id}/{task key}"
    name: str
    task_key: str
    run_count: int  # the attempt, from 1
    parameters: Mapping[str, Any]  # the arguments the function is called with


@dataclass(frozen=True)
class RunScope:
    flow_run: FlowRunInfo
    task_run: TaskRunInfo | None
    logger: logging.Logger
    log_prints: bool


_CURRENT: ContextVar[RunScope | None] = ContextVar("kumoflow_run_scope", default=None)
# The flow whose body is being compiled (and its logger), while it is.
_COMPILING: ContextVar[tuple[str, logging.Logger] | None] = ContextVar(
    "kumoflow_compiling", default=None
)
_PRINTS: ContextVar[logging.Logger | None] = ContextVar("kumoflow_prints", default=None)


class RunLogger(logging.Logger):
    """A standard Logger whose records carry the run's ids (the JSON formatter emits them).

    Not registered with logging's manager (one per attempt would never be freed); it hands its
    records to `base` (`kumoflow.run`), so handlers and levels configured there apply."""

    def __init__(self, fields: Mapping[str, object], base: logging.Logger = RUN_LOGGER) -> None:
        super().__init__(base.name)
        self.parent = base
        self._fields = dict(fields)

    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = super().makeRecord(*args, **kwargs)
        for key, value in self._fields.items():
            record.__dict__.setdefault(key, value)  # a caller's `extra` wins
        return record


def get_run_logger() -> logging.Logger:
    """The logger of the current task attempt (or flow body being compiled); outside a run a
    plain `kumoflow.run` logger, with a warning the first time."""
    _ensure_output()
    scope = _CURRENT.get()
    if scope is not None:
        return scope.logger
    compiling = _COMPILING.get()
    if compiling is not None:
        return compiling[1]
    _warn_once()
    return RUN_LOGGER


class _RunView:
    """The current run's info, read when an attribute is (as Prefect's `prefect.runtime`
    modules): one object, imported once, that every attempt reads its own run through. Falsy
    outside a run, where its fields read as Prefect's do (None, an empty `parameters`,
    `run_count` 0); refused in a flow body, where no run exists yet."""

    _what: ClassVar[str] = ""
    _fields: ClassVar[frozenset[str]] = frozenset()
    _outside: ClassVar[Mapping[str, Any]] = {"parameters": {}, "run_count": 0}

    def _info(self) -> FlowRunInfo | TaskRunInfo | None:
        raise NotImplementedError

    def get(self) -> Any:
        """The current run's info (a frozen dataclass), or None outside a run."""
        info = self._info()
        if info is None:
            _refuse_in_flow_body(self._what)
        return info

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        info = self.get()
        if info is not None:
            return getattr(info, name)
        if name not in self._fields:
            raise AttributeError(f"{self._what} has no field {name!r}")
        return self._outside.get(name)

    def __bool__(self) -> bool:
        return self.get() is not None

    def __repr__(self) -> str:
        info = self._info()
        return f"<{self._what}: {info!r}>" if info is not None else f"<{self._what}: no run>"


class FlowRunView(_RunView):
    _what = "context.flow_run"
    _fields = frozenset(FlowRunInfo.__dataclass_fields__)

    def _info(self) -> FlowRunInfo | None:
        scope = _CURRENT.get()
        return scope.flow_run if scope else None


class TaskRunView(_RunView):
    _what = "context.task_run"
    _fields = frozenset(TaskRunInfo.__dataclass_fields__)

    def _info(self) -> TaskRunInfo | None:
        scope = _CURRENT.get()
        return scope.task_run if scope else None


# `orchestrator.context.flow_run` / `.task_run` (the module orchestrator/context.py).
flow_run = FlowRunView()
task_run = TaskRunView()


def _refuse_in_flow_body(what: str) -> None:
    compiling = _COMPILING.get()
    if compiling is not None:
        raise FlowDefinitionError(
            f"{what} read in the body of flow {compiling[0]!r}: the body is compiled "
            "once into a DAG before any run exists, so no run is current there. Read it inside "
            "a @task (every attempt sees its own run)"
        )


def flow_scope_for(run: Run, spec: FlowSpec) -> RunScope:
    """The scope of the run itself, with no task (a flow's state hooks run in it)."""
    logger = RunLogger({"run_id": run.run_id, "flow": run.flow, "attempt": run.attempt})
    return RunScope(_flow_run(run, spec), None, logger, spec.options.log_prints)


def _flow_run(run: Run, spec: FlowSpec) -> FlowRunInfo:
    scheduled = run.trigger.detail.get("scheduled_for")
    return FlowRunInfo(
        id=run.run_id,
        name=run.run_id,
        flow_name=run.flow,
        flow_version=run.flow_version,
        parameters=masked(run.params, secret_params(spec)),
        trigger=run.trigger,
        scheduled_start_time=(
            datetime.fromisoformat(scheduled) if isinstance(scheduled, str) else run.created_at
        ),
        run_count=run.attempt,
    )


def task_scope_for(
    run: Run, spec: FlowSpec, key: str, attempt: int, options: TaskOptions, args: Mapping[str, Any]
) -> RunScope:
    """The scope of one task attempt, from what the worker already holds."""
    flow_run = _flow_run(run, spec)
    task_run = TaskRunInfo(
        id=f"{run.run_id}/{key}",
        name=options.name,
        task_key=key,
        run_count=attempt,
        parameters=dict(args),
    )
    logger = RunLogger(
        {"run_id": run.run_id, "flow": run.flow, "task": key, "task_name": options.name,
         "attempt": attempt}
    )  # fmt: skip
    log_prints = spec.options.log_prints if options.log_prints is None else options.log_prints
    return RunScope(flow_run, task_run, logger, log_prints)


@contextmanager
def run_scope(scope: RunScope) -> Iterator[None]:
    """Make `scope` current (and route print to its logger if asked) while the attempt runs."""
    token = _CURRENT.set(scope)
    prints = _PRINTS.set(scope.logger if scope.log_prints else None)
    if scope.log_prints:
        _install_print()
    try:
        yield
    finally:
        _PRINTS.reset(prints)
        _CURRENT.reset(token)


def in_flow_body() -> bool:
    """True while a flow body is compiled (no run exists: values are placeholders)."""
    return _COMPILING.get() is not None


@contextmanager
def compiling(flow_name: str, log_prints: bool) -> Iterator[None]:
    """While a flow body is compiled: its logger names the flow; run context is refused."""
    logger = RunLogger({"flow": flow_name})
    token = _COMPILING.set((flow_name, logger))
    prints = _PRINTS.set(logger if log_prints else None)
    if log_prints:
        _install_print()
    try:
        yield
    finally:
        _PRINTS.reset(prints)
        _COMPILING.reset(token)


# print() is replaced once, process-wide, by a function that defers to the real one unless the
# calling context asked for its prints to be logged (context variables keep threads apart).
_REAL_PRINT = builtins.print
_lock = threading.Lock()
_warned: list[bool] = []


def _print(*values: object, sep: str | None = " ", end: str | None = "\n",
           file: Any = None, flush: bool = False) -> None:  # fmt: skip
    logger = _PRINTS.get()
    if logger is None or (file is not None and file is not sys.stdout):
        _REAL_PRINT(*values, sep=sep, end=end, file=file, flush=flush)
        return
    logger.info((" " if sep is None else sep).join(map(str, values)))


def _install_print() -> None:
    _ensure_output()
    with _lock:
        if builtins.print is not _print:
            builtins.print = _print


def _ensure_output() -> None:
    """Run logs are INFO: with no handler anywhere (a plain script) they would vanish, so
    they get a console handler once. Functions configure JSON on `kumoflow` instead."""
    if RUN_LOGGER.hasHandlers():
        return
    with _lock:
        if not RUN_LOGGER.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_ConsoleFormatter())
            RUN_LOGGER.addHandler(handler)


class _ConsoleFormatter(logging.Formatter):
    """`12:00:01.234 | INFO    | run/task - message`, as Prefect's console shows run logs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        where = "/".join(
            str(v) for v in (getattr(record, "run_id", None), getattr(record, "task", None)) if v
        ) or getattr(record, "flow", None)
        if where:
            record.message = f"{where} - {record.message}"
        return super().formatMessage(record)


def _warn_once() -> None:
    with _lock:
        if _warned:
            return
        _warned.append(True)
    LOGGER.warning(
        "get_run_logger() called outside a flow run or task: returning the plain "
        "'kumoflow.run' logger (its records carry no run ids)"
    )
