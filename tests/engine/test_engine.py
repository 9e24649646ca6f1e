"""The pure engine: data in, data out. Unit cases plus properties over random DAGs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

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
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine import (
    RECHECK_AFTER,
    TASK_TRANSITIONS,
    CancelRun,
    Dispatch,
    FinishRun,
    Plan,
    Reconcile,
    ResumeRun,
    RunState,
    StartRun,
    Transition,
    WakeAt,
    claim,
    expand,
    renew,
    retry_delay,
    whole_run,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_plan(
    parents: list[list[int]],
    retries: int = 0,
    delays: tuple[float, ...] = (),
    jitter: float | None = None,
    timeout: float | None = None,
) -> Plan:
    nodes = []
    for i, ps in enumerate(parents):
        options = TaskOptions(
            name=f"t{i}",
            retry=RetryPolicy(retries=retries, delay_seconds=delays or 0.0, jitter_factor=jitter),
        )
        args = {f"a{p}": ResultRef(node=f"t{p}") for p in ps} or {"x": LiteralValue(value=i)}
        nodes.append(NodeSpec(key=f"t{i}", task="m:f", args=args, options=options))
    spec = FlowSpec(
        options=FlowOptions(name="g", timeout_seconds=timeout),
        source=SourceRef(module="m"),
        entrypoint="g",
        params=(),
        nodes=tuple(nodes),
        result=ResultRef(node=f"t{len(parents) - 1}") if parents else LiteralValue(value=None),
    )
    return expand(spec, {})


def new_state() -> RunState:
    return RunState(
        Run(run_id="r", flow="g", flow_version="0123456789abcdef0123", params={}, created_at=T0), {}
    )


def ok(key: str, attempt: int) -> TaskSucceeded:
    return TaskSucceeded(
        run_id="r",
        key=key,
        attempt=attempt,
        token="unclaimed",  # these states skip the claim: any token fits an unclaimed attempt
        result_uri=f"gs://b/{key}/{attempt}",
        worker="w",
        started_at=T0,
        ended_at=T0,
    )


def bad(key: str, attempt: int, retryable: bool = True) -> TaskFailed:
    return TaskFailed(
        run_id="r",
        key=key,
        attempt=attempt,
        token="unclaimed",
        retryable=retryable,
        worker="w",
        error=ErrorInfo(type="RuntimeError", message="boom"),
        started_at=T0,
        ended_at=T0,
    )


def test_chain_runs_in_order_and_finishes_once() -> None:
    plan = make_plan([[], [0], [1]])
    tr = whole_run(plan, new_state(), StartRun(), T0)
    assert tr.commands == (WakeAt(T0 + RECHECK_AFTER), Dispatch("t0", 1))  # + an hourly check
    tr = whole_run(plan, tr.state, ok("t0", 1), T0)
    assert tr.commands == (Dispatch("t1", 1),)
    again = whole_run(plan, tr.state, ok("t0", 1), T0)  # duplicate delivery
    assert again.commands == ()
    assert not again.changed
    tr = whole_run(plan, tr.state, ok("t1", 1), T0)
    tr = whole_run(plan, tr.state, ok("t2", 1), T0)
    assert tr.commands == (FinishRun(RunStatus.SUCCEEDED, None),)
    assert tr.state.run.status is RunStatus.SUCCEEDED
    assert whole_run(plan, tr.state, ok("t2", 1), T0).commands == ()


def test_retry_delays_list_and_exhaustion() -> None:
    plan = make_plan([[], [0]], retries=2, delays=(1.0, 2.0))
    tr = whole_run(plan, new_state(), StartRun(), T0)
    tr = whole_run(plan, tr.state, bad("t0", 1), T0)
    assert tr.commands == (Dispatch("t0", 2, T0 + timedelta(seconds=1)),)
    assert tr.state.tasks["t0"].status is TaskStatus.SCHEDULED
    t1 = T0 + timedelta(seconds=1)
    tr = whole_run(plan, tr.state, bad("t0", 2), t1)
    assert tr.commands == (Dispatch("t0", 3, t1 + timedelta(seconds=2)),)
    tr = whole_run(plan, tr.state, bad("t0", 3), t1)
    assert tr.state.tasks["t0"].status is TaskStatus.FAILED
    assert tr.state.tasks["t1"].status is TaskStatus.SKIPPED
    finish = [c for c in tr.commands if isinstance(c, FinishRun)]
    assert finish
    assert finish[0].status is RunStatus.FAILED
    assert finish[0].error
    assert finish[0].error.task == "t0"


def test_not_retryable_failure_fails_at_once() -> None:
    plan = make_plan([[]], retries=5)
    tr = whole_run(plan, new_state(), StartRun(), T0)
    tr = whole_run(plan, tr.state, bad("t0", 1, retryable=False), T0)
    assert tr.state.run.status is RunStatus.FAILED


def test_jitter_stays_within_bounds_and_is_deterministic() -> None:
    plan = make_plan([[]], retries=3, delays=(10.0,), jitter=0.5)
    delays = [retry_delay(plan, "r", "t0", n) for n in (1, 2, 3)]
    assert all(5.0 <= d <= 15.0 for d in delays)
    assert delays == [retry_delay(plan, "r", "t0", n) for n in (1, 2, 3)]


def test_fan_in_waits_for_every_parent() -> None:
    plan = make_plan([[], [], [0, 1]])
    tr = whole_run(plan, new_state(), StartRun(), T0)
    assert {c.key for c in tr.commands if isinstance(c, Dispatch)} == {"t0", "t1"}
    tr = whole_run(plan, tr.state, ok("t0", 1), T0)
    assert tr.commands == ()
    tr = whole_run(plan, tr.state, ok("t1", 1), T0)
    assert tr.commands == (Dispatch("t2", 1),)


def test_reconcile_repairs_a_state_whose_event_was_applied_elsewhere() -> None:
    """Two writers each committed their own parent; a Reconcile after commit sees both."""
    plan = make_plan([[], [], [0, 1]])
    start = whole_run(plan, new_state(), StartRun(), T0).state
    a = whole_run(plan, start, ok("t0", 1), T0).state
    b = whole_run(plan, start, ok("t1", 1), T0).state
    merged = RunState(start.run, {**a.tasks, "t1": b.tasks["t1"]})
    tr = whole_run(plan, merged, Reconcile(), T0)
    assert tr.commands == (Dispatch("t2", 1), WakeAt(T0 + RECHECK_AFTER))


def test_reconcile_rearms_a_retry_whose_dispatch_is_gone_and_leaves_an_armed_one() -> None:
    plan = make_plan([[]], retries=1, delays=(30.0,))
    tr = whole_run(plan, new_state(), StartRun(), T0)
    state = whole_run(plan, tr.state, bad("t0", 1), T0).state
    due = T0 + timedelta(seconds=30)
    assert state.tasks["t0"].status is TaskStatus.SCHEDULED

    def dispatches(armed: frozenset[tuple[str, int]] | None, at: datetime) -> list[Dispatch]:
        tr = whole_run(plan, state, Reconcile(armed=armed), at)
        return [c for c in tr.commands if isinstance(c, Dispatch)]

    later = T0 + timedelta(hours=1)
    assert dispatches(frozenset({("t0", 2)}), later) == []  # its timer is there (quarantined)
    assert dispatches(None, later) == []  # not known what the outbox holds
    assert dispatches(frozenset({("t0", 1)}), later) == [Dispatch("t0", 2, due)]
    assert dispatches(frozenset(), T0 + timedelta(seconds=10)) == [Dispatch("t0", 2, due)]
    # Due a moment ago and not in the outbox: its request may just be on its way.
    assert dispatches(frozenset(), T0 + timedelta(minutes=5)) == []


def test_reconcile_hands_a_long_queued_attempt_without_a_redispatch_to_the_sweep() -> None:
    plan = make_plan([[], [0]])
    start = whole_run(plan, new_state(), StartRun(), T0).state  # queued by the whole-run path
    assert start.tasks["t0"].redispatch_at is None
    soon = whole_run(plan, start, Reconcile(armed=frozenset()), T0 + timedelta(minutes=5))
    assert "t0" not in soon.changed
    late_at = T0 + timedelta(minutes=11)
    late = whole_run(plan, start, Reconcile(armed=frozenset()), late_at)
    assert late.state.tasks["t0"].redispatch_at == late_at
    armed = whole_run(plan, start, Reconcile(armed=frozenset({("t0", 1)})), late_at)
    assert "t0" not in armed.changed


def test_claim_fences_the_waiting_attempt_and_never_takes_over() -> None:
    plan = make_plan([[]], retries=1)
    tr = whole_run(plan, new_state(), StartRun(), T0)
    task = tr.state.tasks["t0"]
    running = claim(task, 1, "tok-1", "w1", T0, 60)
    assert running is not None
    assert running.status is TaskStatus.RUNNING
    assert running.attempts[-1].token == "tok-1"
    assert claim(running, 1, "tok-2", "w2", T0 + timedelta(seconds=600), 60) is None
    assert claim(task, 2, "tok-2", "w1", T0, 60) is None
    # Completions fenced by the token: another claim's report changes nothing.
    state = RunState(tr.state.run, {"t0": running})
    stale = ok("t0", 1).model_copy(update={"token": "tok-2"})
    assert not whole_run(plan, state, stale, T0).changed
    good = ok("t0", 1).model_copy(update={"token": "tok-1"})
    assert whole_run(plan, state, good, T0).state.run.status is RunStatus.SUCCEEDED
    # Renewal only by the holder of the current claim.
    assert renew(running, 1, "tok-1", T0 + timedelta(seconds=30), 60) is not None
    assert renew(running, 1, "tok-2", T0 + timedelta(seconds=30), 60) is None


def test_timeout_and_cancel() -> None:
    plan = make_plan([[], [0]], timeout=30)
    tr = whole_run(plan, new_state(), StartRun(), T0)
    assert WakeAt(T0 + timedelta(seconds=30)) in tr.commands
    early = whole_run(plan, tr.state, Reconcile(), T0 + timedelta(seconds=5))
    assert early.state.run.status is RunStatus.RUNNING
    late = whole_run(plan, tr.state, Reconcile(), T0 + timedelta(seconds=31))
    assert late.state.run.status is RunStatus.FAILED
    assert late.state.run.error
    assert late.state.run.error.type == "TimeoutError"
    assert all(t.status is TaskStatus.CANCELLED for t in late.state.tasks.values())
    cancelled = whole_run(plan, tr.state, CancelRun(), T0)
    assert cancelled.state.run.status is RunStatus.CANCELLED


def test_flow_retries_rerun_only_what_failed() -> None:
    plan = make_plan([[], [0]])
    spec = plan.spec.model_copy(update={"options": FlowOptions(name="g", retries=1)})
    plan = expand(spec, {})
    tr = whole_run(plan, new_state(), StartRun(), T0)
    tr = whole_run(plan, tr.state, ok("t0", 1), T0)
    tr = whole_run(plan, tr.state, bad("t1", 1), T0)
    assert tr.state.run.status is RunStatus.RUNNING
    assert tr.state.run.attempt == 2
    assert tr.commands == (Dispatch("t1", 2),)
    tr = whole_run(plan, tr.state, ok("t1", 2), T0)
    assert tr.state.run.status is RunStatus.SUCCEEDED


def test_resuming_a_run_with_nothing_left_to_run_finishes_it() -> None:
    """A cancel committed after the last completion, before the finish: every task succeeded.
    Resuming that run ends it at once, instead of leaving it running until the hourly check."""
    plan = make_plan([[], [0]])
    tr = whole_run(plan, new_state(), StartRun(), T0)
    tr = whole_run(plan, tr.state, ok("t0", 1), T0)
    done = whole_run(plan, tr.state, ok("t1", 1), T0).state
    cancelled = RunState(done.run.model_copy(update={"status": RunStatus.CANCELLED}), done.tasks)
    resumed = whole_run(plan, cancelled, ResumeRun(cancelled.run.attempt), T0)
    assert resumed.state.run.status is RunStatus.SUCCEEDED
    assert FinishRun(RunStatus.SUCCEEDED, None, 2) in resumed.commands
    assert not any(isinstance(c, Dispatch) for c in resumed.commands)


def test_empty_flow_finishes_at_start() -> None:
    tr = whole_run(make_plan([]), new_state(), StartRun(), T0)
    assert tr.state.run.status is RunStatus.SUCCEEDED


@st.composite
def dags(draw: st.DrawFn) -> list[list[int]]:
    n = draw(st.integers(1, 12))
    return [sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(dag=dags(), retries=st.integers(0, 2), data=st.data())
def test_random_dags_respect_dependencies_attempts_and_end_once(
    dag: list[list[int]], retries: int, data: st.DataObject
) -> None:
    plan = make_plan(dag, retries=retries, delays=(1.0,))
    state = new_state()
    inflight: list[tuple[str, int]] = []
    dispatched: set[tuple[str, int]] = set()
    delivered: list[TaskSucceeded | TaskFailed] = []
    finishes = 0
    now = T0

    def apply(tr: Transition) -> RunState:
        nonlocal finishes
        for key in tr.changed:
            old = state.tasks.get(key)
            if old is not None and old.status != tr.state.tasks[key].status:
                assert tr.state.tasks[key].status in TASK_TRANSITIONS[old.status]
        for c in tr.commands:
            if isinstance(c, Dispatch):
                assert (c.key, c.attempt) not in dispatched, "an attempt was dispatched twice"
                dispatched.add((c.key, c.attempt))
                for parent in plan.tasks[c.key].parents:
                    assert tr.state.tasks[parent].status is TaskStatus.SUCCEEDED
                inflight.append((c.key, c.attempt))
            elif isinstance(c, FinishRun):
                finishes += 1
        return tr.state

    state = apply(whole_run(plan, state, StartRun(), now))
    while inflight:
        key, attempt = inflight.pop(data.draw(st.integers(0, len(inflight) - 1)))
        outcome: TaskSucceeded | TaskFailed = (
            ok(key, attempt) if data.draw(st.booleans()) else bad(key, attempt)
        )
        delivered.append(outcome)
        now += timedelta(seconds=1)
        state = apply(whole_run(plan, state, outcome, now))
        if delivered and data.draw(st.booleans()):  # redeliver an old event: must change nothing
            old = data.draw(st.sampled_from(delivered))
            tr = whole_run(plan, state, old, now)
            assert not tr.changed
            assert not tr.commands
    assert finishes == 1
    assert state.run.status.terminal
    for key, planned in plan.tasks.items():
        task = state.task(plan, key)
        assert task.status.terminal
        attempts = [a for (k, a) in dispatched if k == key]
        assert len(attempts) <= retries + 1
        if task.status is TaskStatus.SKIPPED:
            assert not attempts
            assert any(
                state.task(plan, p).status is not TaskStatus.SUCCEEDED for p in planned.parents
            )
    failed = any(state.task(plan, k).status is TaskStatus.FAILED for k in plan.tasks)
    assert state.run.status is (RunStatus.FAILED if failed else RunStatus.SUCCEEDED)


def test_a_run_time_map_wider_than_its_limit_fails_and_one_at_the_limit_grows() -> None:
    from orchestrator.engine import MAX_MAP_WIDTH, expanded
    from tests.flows.dynamic import list_process_summarize

    spec = list_process_summarize.spec
    params: dict[str, JsonValue] = {"count": 3, "extra": 0}
    plan = expand(spec, params)
    run = Run(run_id="r", flow=spec.name, flow_version="0" * 20, params=params, created_at=T0)
    at = expanded(run, plan, "measure", 7, limit=7)
    assert (at.status, at.width, at.error) == (TaskStatus.SUCCEEDED, 7, None)
    over = expanded(run, plan, "measure", 8, limit=7)
    assert over.status is TaskStatus.FAILED
    assert over.width is None
    assert over.error is not None
    assert over.error.type == "MapError"
    assert "a list of 8 elements: more than the maximum map width, 7." in over.error.message
    assert expanded(run, plan, "measure", MAX_MAP_WIDTH).status is TaskStatus.SUCCEEDED
    assert expanded(run, plan, "measure", MAX_MAP_WIDTH + 1).status is TaskStatus.FAILED
