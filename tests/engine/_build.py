"""Plans, runs and task records for the per-task engine's tests (data in, data out)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from orchestrator.contracts import (
    ErrorInfo,
    FlowOptions,
    FlowSpec,
    LiteralValue,
    NodeSpec,
    ResultRef,
    RetryPolicy,
    Run,
    RunStatus,
    SourceRef,
    TaskFailed,
    TaskOptions,
    TaskRun,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine import Plan, claim, expand, queued

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = 60.0
S = TaskStatus


def spec_of(
    parents: Sequence[Sequence[int]],
    *,
    retries: int = 0,
    delays: float | tuple[float, ...] = 0.0,
    jitter: float | None = None,
    allow: dict[int, Sequence[int]] | None = None,
    result: int | None = -1,
    flow_retries: int = 0,
    timeout: float | None = None,
) -> FlowSpec:
    """Tasks t0..tN-1, task i reading the results of `parents[i]`; `allow[i]`: the parents
    whose failure task i runs past (allow_failure); `result`: the task the flow returns
    (-1: the last, None: nothing)."""
    allow = allow or {}
    nodes = []
    for i, ps in enumerate(parents):
        options = TaskOptions(
            name=f"t{i}",
            retry=RetryPolicy(retries=retries, delay_seconds=delays, jitter_factor=jitter),
        )
        args = {f"a{p}": ResultRef(node=f"t{p}") for p in ps} or {"x": LiteralValue(value=i)}
        nodes.append(
            NodeSpec(
                key=f"t{i}",
                task="m:f",
                args=args,
                allow_failure=tuple(f"t{p}" for p in allow.get(i, ())),
                options=options,
            )
        )
    if result is None or not parents:
        out: ResultRef | LiteralValue = LiteralValue(value=None)
    else:
        out = ResultRef(node=f"t{result % len(parents)}")
    return FlowSpec(
        options=FlowOptions(name="g", retries=flow_retries, timeout_seconds=timeout),
        source=SourceRef(module="m"),
        entrypoint="g",
        params=(),
        nodes=tuple(nodes),
        result=out,
    )


def make_plan(parents: Sequence[Sequence[int]], **kw: object) -> Plan:
    return expand(spec_of(parents, **kw), {})  # type: ignore[arg-type]


def make_run(
    *, attempt: int = 1, status: RunStatus = RunStatus.RUNNING, params: dict[str, int] | None = None
) -> Run:
    return Run(
        run_id="r",
        flow="g",
        flow_version="0123456789abcdef0123",
        params=dict(params or {}),
        created_at=T0,
        status=status,
        attempt=attempt,
        started_at=T0,
    )


def running(plan: Plan, run: Run, key: str, *, token: str = "tok", at: datetime = T0) -> TaskRun:
    """`key` queued for its first attempt and claimed under `token` at `at`."""
    record, _ = queued(run, plan, key, None, at)
    claimed = claim(record, 1, token, "w1", at, LEASE)
    assert claimed is not None
    return claimed


def succeeded(key: str, attempt: int = 1, token: str = "tok", **more: object) -> TaskSucceeded:
    return TaskSucceeded(
        run_id="r",
        key=key,
        attempt=attempt,
        token=token,
        result_uri=f"gs://b/r/{key}",
        worker="w1",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=1),
        **more,  # type: ignore[arg-type]
    )


def failed(key: str, attempt: int = 1, token: str = "tok", *, retryable: bool = True) -> TaskFailed:
    return TaskFailed(
        run_id="r",
        key=key,
        attempt=attempt,
        token=token,
        error=ErrorInfo(type="builtins.RuntimeError", message="boom"),
        retryable=retryable,
        worker="w1",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=1),
    )


def ended(plan: Plan, key: str, status: TaskStatus, **more: object) -> TaskRun:
    """A record of `key` that ended `status` (no attempts: the counters do not read them)."""
    planned = plan.tasks[key]
    return TaskRun(
        run_id="r",
        key=key,
        node=planned.node.key,
        name=planned.node.options.name,
        map_index=planned.map_index,
        status=status,
        **more,  # type: ignore[arg-type]
    )
