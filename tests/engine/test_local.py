"""The per-task engine step by step: complete, claim, renew, waiting, queued, skipped, claimable,
started, expanded, growing, grew, is_growing, stray and retry_delay, each called directly (data
in, data out), plus properties of their invariants under deterministic hypothesis settings."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from orchestrator.contracts import (
    Attempt,
    ErrorInfo,
    Run,
    RunStatus,
    TaskFailed,
    TaskRun,
    TaskStatus,
    TaskSucceeded,
)
from orchestrator.engine import (
    MAX_MAP_WIDTH,
    RECHECK_AFTER,
    REDISPATCH_AFTER,
    Dispatch,
    LeaseExpired,
    Local,
    Plan,
    WakeAt,
    claim,
    claimable,
    complete,
    expand,
    expanded,
    grew,
    growing,
    is_growing,
    queued,
    renew,
    retry_delay,
    skipped,
    started,
    stray,
    waiting,
)
from tests.engine._build import (
    LEASE,
    T0,
    ended,
    failed,
    make_plan,
    make_run,
    running,
    succeeded,
)

S = TaskStatus
# Deterministic: the same examples on every run, so CI is repeatable.
PROPERTY = settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def lease_expired(key: str, attempt: int = 1, token: str = "tok") -> LeaseExpired:
    return LeaseExpired(key, attempt, token)


# --- complete ---------------------------------------------------------------------------------


def test_complete_success_ends_the_task_and_arrives_at_its_child() -> None:
    plan, run = make_plan([[], [0]]), make_run()
    task = running(plan, run, "t0")
    step = complete(plan, run, task, succeeded("t0"), T0)
    assert step.task is not None
    assert step.task.status is S.SUCCEEDED
    assert step.task.result_uri == "gs://b/r/t0"
    assert step.task.attempts[-1].status is S.SUCCEEDED
    assert step.task.attempts[-1].token == "tok"
    assert step.task.lease_until is None  # only a running attempt holds a lease
    assert step.commands == ()
    assert step.increments == {
        "fanin.1.t1": {"done": 1, "bad": 0, "mdone": 0, "more": 0, "need": 0, "width": 0}
    }


def test_complete_of_a_leaf_arrives_at_the_run_counter_bad_when_it_failed() -> None:
    plan, run = make_plan([[]]), make_run()
    step = complete(plan, run, running(plan, run, "t0"), failed("t0", retryable=False), T0)
    assert step.task is not None
    assert step.task.status is S.FAILED
    assert step.task.error == ErrorInfo(type="builtins.RuntimeError", message="boom", task="t0")
    assert step.increments == {
        "run.1": {"done": 1, "bad": 1, "mdone": 0, "more": 0, "need": 0, "width": 0}
    }


def test_complete_retryable_failure_schedules_the_next_attempt_without_arriving() -> None:
    plan, run = make_plan([[], [0]], retries=2, delays=(5.0, 9.0)), make_run()
    now = T0 + timedelta(seconds=3)
    step = complete(plan, run, running(plan, run, "t0"), failed("t0"), now)
    assert step.task is not None
    assert step.task.status is S.SCHEDULED
    assert [a.number for a in step.task.attempts] == [1, 2]
    assert step.task.attempts[-1].token is None  # nobody holds the next attempt yet
    assert step.task.next_attempt_at == now + timedelta(seconds=5)
    assert step.commands == (Dispatch("t0", 2, now + timedelta(seconds=5)),)
    assert step.increments is None  # not ended: no counter moves


def test_complete_not_retryable_failure_ends_at_once_despite_retries() -> None:
    plan, run = make_plan([[]], retries=3), make_run()
    step = complete(plan, run, running(plan, run, "t0"), failed("t0", retryable=False), T0)
    assert step.task is not None
    assert step.task.status is S.FAILED
    assert step.commands == ()


def test_complete_ignores_duplicates_stale_attempts_other_tokens_and_ended_runs() -> None:
    plan, run = make_plan([[], [0]]), make_run()
    task = running(plan, run, "t0")
    done = complete(plan, run, task, succeeded("t0"), T0).task
    assert done is not None
    assert complete(plan, run, done, succeeded("t0"), T0) == Local(None)  # duplicate
    assert complete(plan, run, done, failed("t0"), T0) == Local(None)  # late contradiction
    assert complete(plan, run, task, succeeded("t0", attempt=2), T0) == Local(None)
    assert complete(plan, run, task, succeeded("t0", token="forged"), T0) == Local(None)
    over = make_run(status=RunStatus.CANCELLED)
    assert complete(plan, over, task, succeeded("t0"), T0) == Local(None)


def test_complete_ignores_an_attempt_never_claimed() -> None:
    plan, run = make_plan([[]]), make_run()
    record, _ = queued(run, plan, "t0", None, T0)
    assert complete(plan, run, record, succeeded("t0"), T0) == Local(None)
    assert complete(plan, run, record, lease_expired("t0"), T0 + timedelta(days=1)) == Local(None)


def test_complete_keeps_a_gates_choice_and_a_producers_lengths() -> None:
    from tests.flows.branching import branching
    from tests.flows.dynamic import list_process_summarize

    plan = expand(branching.spec, {"n": 3})
    run = make_run(params={"n": 3})
    gate = complete(plan, run, running(plan, run, "branch"), succeeded("branch", choice="then"), T0)
    assert gate.task is not None
    assert gate.task.choice == "then"
    plain = complete(plan, run, running(plan, run, "is-big"), succeeded("is-big", choice="x"), T0)
    assert plain.task is not None
    assert plain.task.choice is None  # only a gate chooses
    params: dict[str, JsonValue] = {"count": 3}
    plan = expand(list_process_summarize.spec, params)
    run = make_run(params={"count": 3})
    producer = running(plan, run, "names")
    step = complete(plan, run, producer, succeeded("names", lengths={"measure": 3}), T0)
    assert step.task is not None
    assert step.task.lengths == {"measure": 3}
    assert step.increments is not None
    assert step.increments["fanin.1.measure"]["width"] == 3  # the map learns its width


def test_lease_expiry_fails_the_attempt_only_once_its_lease_is_past() -> None:
    plan, run = make_plan([[]], retries=1), make_run()
    task = running(plan, run, "t0")
    until = T0 + timedelta(seconds=LEASE)
    assert task.lease_until == until
    assert complete(plan, run, task, lease_expired("t0"), until - timedelta(microseconds=1)) == (
        Local(None)
    )
    step = complete(plan, run, task, lease_expired("t0"), until)
    assert step.task is not None
    assert step.task.status is S.SCHEDULED  # a lost worker is retryable: the retry runs
    assert step.task.error is not None
    assert step.task.error.type == "LeaseExpired"
    assert step.task.attempts[0].error == step.task.error
    assert step.task.attempts[0].ended_at == until
    # Another claim's or another attempt's expiry changes nothing.
    assert complete(plan, run, task, lease_expired("t0", token="x"), until) == Local(None)
    assert complete(plan, run, task, lease_expired("t0", attempt=2), until) == Local(None)


def test_lease_expiry_after_the_last_retry_fails_the_task() -> None:
    plan, run = make_plan([[]]), make_run()
    step = complete(plan, run, running(plan, run, "t0"), lease_expired("t0"), T0 + timedelta(1))
    assert step.task is not None
    assert step.task.status is S.FAILED
    assert step.increments is not None
    assert step.increments["run.1"]["bad"] == 1


def test_lease_expiry_of_a_renewed_lease_changes_nothing() -> None:
    plan, run = make_plan([[]]), make_run()
    task = running(plan, run, "t0")
    later = T0 + timedelta(seconds=50)
    renewed = renew(task, 1, "tok", later, LEASE)
    assert renewed is not None
    between = T0 + timedelta(seconds=LEASE + 1)  # past the first lease, within the renewed one
    assert complete(plan, run, task, lease_expired("t0"), between).task is not None
    assert complete(plan, run, renewed, lease_expired("t0"), between) == Local(None)


def test_lease_expiry_of_a_subflow_wait_changes_nothing() -> None:
    plan, run = make_plan([[]], retries=1), make_run()
    task = running(plan, run, "t0")
    held = waiting(task, 1, "tok", "child-run")
    assert held is not None
    assert held.lease_until is None
    step = complete(plan, run, held, lease_expired("t0"), T0 + timedelta(seconds=LEASE + 1))
    assert step == Local(None)


# --- properties of complete -------------------------------------------------------------------

# What a task record can look like when an event for it arrives.
SHAPES = ("queued", "running", "scheduled", "retrying", "succeeded", "failed", "skipped")


def shaped(plan: Plan, shape: str, claimed_at: datetime) -> TaskRun:
    run = make_run()
    if shape == "skipped":
        return ended(plan, "t0", S.SKIPPED)
    record, _ = queued(run, plan, "t0", None, claimed_at)
    if shape == "queued":
        return record
    first = claim(record, 1, "tok", "w1", claimed_at, LEASE)
    assert first is not None
    if shape == "running":
        return first
    outcome = {
        "succeeded": succeeded("t0"),
        "failed": failed("t0", retryable=False),
    }.get(shape, failed("t0"))
    after = complete(plan, run, first, outcome, claimed_at).task
    assert after is not None
    if shape != "retrying":
        return after
    again = claim(after, 2, "tok", "w2", claimed_at, LEASE)
    assert again is not None
    return again


@PROPERTY
@given(
    shape=st.sampled_from(SHAPES),
    kind=st.sampled_from(("ok", "fail", "fatal", "expired")),
    attempt=st.integers(1, 3),
    token=st.sampled_from(("tok", "other")),
    seconds=st.integers(-5, 2 * int(LEASE)),
    run_status=st.sampled_from(list(RunStatus)),
)
def test_complete_changes_only_the_current_claims_live_attempt(
    shape: str, kind: str, attempt: int, token: str, seconds: int, run_status: RunStatus
) -> None:
    """Whatever the record and the event, `complete` changes a task exactly when the run goes
    on, the task is going, the event names its current attempt and that attempt's claim, and
    (for a lease expiry) the lease is past; then it moves the task forward, arriving at the
    counters exactly when the task ends, and the same event again changes nothing."""
    plan = make_plan([[], [0]], retries=1)
    task = shaped(plan, shape, T0)
    run = make_run(status=run_status)
    now = T0 + timedelta(seconds=seconds)
    event: TaskSucceeded | TaskFailed | LeaseExpired = {
        "ok": succeeded("t0", attempt, token),
        "fail": failed("t0", attempt, token),
        "fatal": failed("t0", attempt, token, retryable=False),
        "expired": lease_expired("t0", attempt, token),
    }[kind]
    last = task.attempts[-1] if task.attempts else None
    going = task.status in (S.RUNNING, S.RETRYING)
    lease_past = last is not None and last.lease_until is not None and now >= last.lease_until
    expect = (
        run_status in (RunStatus.PENDING, RunStatus.RUNNING)
        and going
        and last is not None
        and attempt == task.attempt
        and token == last.token
        and (kind != "expired" or lease_past)
    )
    step = complete(plan, run, task, event, now)
    if not expect:
        assert step == Local(None)
        return
    new = step.task
    assert new is not None
    tries_left = task.attempt < 2
    if kind == "ok":
        assert new.status is S.SUCCEEDED
    elif kind == "fatal" or not tries_left:
        assert new.status is S.FAILED
    else:
        assert new.status is S.SCHEDULED
        assert new.attempt == task.attempt + 1
        assert step.commands == (Dispatch("t0", new.attempt, now),)
    assert (step.increments is not None) is new.status.terminal
    assert new.lease_until is None
    if kind == "expired":
        assert new.error is not None
        assert new.error.type == "LeaseExpired"
    assert complete(plan, run, new, event, now) == Local(None)  # a redelivery


# --- claim, renew, waiting --------------------------------------------------------------------


def test_claim_takes_a_queued_attempt_and_clears_what_the_wait_needed() -> None:
    plan, run = make_plan([[]]), make_run()
    record, _ = queued(run, plan, "t0", None, T0)
    record = record.model_copy(update={"child_run": "old-child"})
    now = T0 + timedelta(seconds=7)
    got = claim(record, 1, "tok-1", "w9", now, 30)
    assert got is not None
    assert got.status is S.RUNNING
    assert got.lease_until == now + timedelta(seconds=30)
    assert got.redispatch_at is None
    assert got.child_run is None
    last = got.attempts[-1]
    assert (last.number, last.status, last.token, last.worker, last.started_at) == (
        1,
        S.RUNNING,
        "tok-1",
        "w9",
        now,
    )
    assert last.lease_until == got.lease_until
    assert claim(record, 2, "tok-1", "w9", now, 30) is None  # not the waiting attempt
    assert claim(got, 1, "tok-2", "w8", now + timedelta(hours=1), 30) is None  # never taken over


def test_claim_of_a_scheduled_retry_is_retrying() -> None:
    plan, run = make_plan([[]], retries=1), make_run()
    after = complete(plan, run, running(plan, run, "t0"), failed("t0"), T0).task
    assert after is not None
    assert after.status is S.SCHEDULED
    got = claim(after, 2, "tok-2", "w2", T0, LEASE)
    assert got is not None
    assert got.status is S.RETRYING
    assert got.attempts[0].token == "tok"  # the ended attempt keeps its own claim
    assert got.attempts[1].token == "tok-2"


def test_renew_extends_the_holders_lease_only() -> None:
    plan, run = make_plan([[]]), make_run()
    task = running(plan, run, "t0", token="a")
    later = T0 + timedelta(seconds=40)
    got = renew(task, 1, "a", later, 90)
    assert got is not None
    assert got.lease_until == later + timedelta(seconds=90)
    assert got.attempts[-1].lease_until == got.lease_until
    assert got.status is task.status
    assert renew(task, 1, "b", later, 90) is None
    assert renew(task, 2, "a", later, 90) is None
    done = complete(plan, run, task, succeeded("t0", token="a"), later).task
    assert done is not None
    assert renew(done, 1, "a", later, 90) is None


def test_waiting_drops_the_lease_names_the_child_and_cannot_be_renewed() -> None:
    plan, run = make_plan([[]]), make_run()
    task = running(plan, run, "t0")
    held = waiting(task, 1, "tok", "child-1")
    assert held is not None
    assert (held.status, held.child_run, held.lease_until) == (S.RUNNING, "child-1", None)
    assert held.attempts[-1].lease_until is None
    assert renew(held, 1, "tok", T0, LEASE) is None  # a wait has no lease to keep
    assert waiting(task, 1, "other", "child-1") is None
    assert waiting(task, 2, "tok", "child-1") is None
    queued_only, _ = queued(run, plan, "t0", None, T0)
    assert waiting(queued_only, 1, "tok", "child-1") is None


OPS = st.lists(
    st.tuples(
        st.sampled_from(("claim", "renew", "ok", "fail", "expire")),
        st.integers(1, 3),
        st.sampled_from(("a", "b")),
        st.integers(0, 90),
    ),
    max_size=12,
)


@PROPERTY
@given(ops=OPS)
def test_only_the_current_claim_renews_and_a_claim_never_takes_over(
    ops: list[tuple[str, int, str, int]],
) -> None:
    """Over any sequence of claims, renewals and ends: a renewal succeeds exactly for the
    attempt and token of the claim that holds the running attempt, and moves only its lease;
    a claim succeeds exactly for the waiting (queued or scheduled) attempt."""
    plan, run = make_plan([[]], retries=2), make_run()
    task, _ = queued(run, plan, "t0", None, T0)
    now = T0
    for op, attempt, token, step in ops:
        now += timedelta(seconds=step)
        last = task.attempts[-1]
        holds = task.status in (S.RUNNING, S.RETRYING) and attempt == task.attempt
        if op == "claim":
            got = claim(task, attempt, token, "w", now, LEASE)
            waits = task.status in (S.QUEUED, S.SCHEDULED) and attempt == task.attempt
            assert (got is not None) is waits
        elif op == "renew":
            got = renew(task, attempt, token, now, LEASE)
            assert (got is not None) is (holds and token == last.token)
            if got is not None:
                assert got.lease_until == now + timedelta(seconds=LEASE)
                assert got.attempts[-1].lease_until == got.lease_until
                same = got.model_copy(update={"lease_until": None, "attempts": ()})
                assert same == task.model_copy(update={"lease_until": None, "attempts": ()})
                assert got.attempts[:-1] == task.attempts[:-1]
                assert got.attempts[-1].token == last.token
        else:
            event: TaskSucceeded | TaskFailed | LeaseExpired = {
                "ok": succeeded("t0", attempt, token),
                "fail": failed("t0", attempt, token),
                "expire": lease_expired("t0", attempt, token),
            }[op]
            got = complete(plan, run, task, event, now).task
            live = last.lease_until is not None and now >= last.lease_until
            expect = holds and token == last.token and (op != "expire" or live)
            assert (got is not None) is expect
        if got is not None:
            task = got


# --- queued, skipped, claimable, started ------------------------------------------------------


def test_queued_appends_the_next_attempt_of_this_flow_attempt() -> None:
    plan = make_plan([[]])
    run = make_run(attempt=3)
    now = T0 + timedelta(minutes=2)
    first, dispatch = queued(run, plan, "t0", None, now)
    assert dispatch == Dispatch("t0", 1)
    assert first.status is S.QUEUED
    assert first.redispatch_at == now + REDISPATCH_AFTER
    assert first.attempts == (Attempt(number=1, status=S.QUEUED, queued_at=now, flow_attempt=3),)
    gone = first.model_copy(update={"status": S.FAILED, "error": ErrorInfo(type="x", message="y")})
    again, dispatch = queued(run, plan, "t0", gone, now)
    assert dispatch == Dispatch("t0", 2)
    assert again.error is None
    assert [a.number for a in again.attempts] == [1, 2]


def test_skipped_names_the_parent_that_decided_it() -> None:
    plan, run = make_plan([[], [], [0, 1]]), make_run()
    parents = [ended(plan, "t0", S.SUCCEEDED), ended(plan, "t1", S.FAILED)]
    record = skipped(run, plan, "t2", None, parents)
    assert record.status is S.SKIPPED
    assert record.error == ErrorInfo(
        type="UpstreamFailed", message="not run: upstream task 't1' ended FAILED", task="t2"
    )
    unknown = skipped(run, plan, "t2", None, [])
    assert unknown.error is not None
    assert unknown.error.message == "not run: an upstream task did not succeed"


def test_claimable_makes_only_a_roots_first_record() -> None:
    plan, run = make_plan([[], [0]]), make_run()
    made = claimable(run, plan, "t0", None, 1, T0)
    assert made is not None
    assert (made.status, made.attempt) == (S.QUEUED, 1)
    assert claimable(run, plan, "t1", None, 1, T0) is None  # not a root: never dispatched bare
    assert claimable(run, plan, "t0", None, 2, T0) is None
    assert claimable(make_run(attempt=2), plan, "t0", None, 1, T0) is None
    stored = ended(plan, "t0", S.SUCCEEDED)
    assert claimable(run, plan, "t0", stored, 1, T0) is stored


def test_started_runs_a_pending_run_once_with_its_wakes() -> None:
    plan = make_plan([[]], timeout=30)
    pending = make_run(status=RunStatus.PENDING).model_copy(update={"started_at": None})
    run, commands = started(plan, pending, T0)
    assert run.status is RunStatus.RUNNING
    assert run.started_at == T0
    assert run.timeout_at == T0 + timedelta(seconds=30)
    assert commands == (WakeAt(T0 + RECHECK_AFTER), WakeAt(T0 + timedelta(seconds=30)))
    assert started(plan, run, T0 + timedelta(seconds=1)) == (run, ())
    untimed, commands = started(make_plan([[]]), pending, T0)
    assert untimed.timeout_at is None
    assert commands == (WakeAt(T0 + RECHECK_AFTER),)


# --- run-time maps: expanded, growing, grew, is_growing ---------------------------------------


def _map_plan() -> tuple[Plan, Run]:
    from tests.flows.dynamic import list_process_summarize

    params: dict[str, JsonValue] = {"count": 3}
    return expand(list_process_summarize.spec, params), make_run(params={"count": 3})


def test_expanded_fails_a_map_that_cannot_grow() -> None:
    from orchestrator.contracts import NO_PATH, NOT_A_LIST

    plan, run = _map_plan()
    for width, words in (
        (NOT_A_LIST, "which is not a list"),
        (NO_PATH, "which does not resolve on 'names''s result"),
        (MAX_MAP_WIDTH + 1, f"a list of {MAX_MAP_WIDTH + 1} elements"),
    ):
        record = expanded(run, plan, "measure", width)
        assert record.status is S.FAILED
        assert record.error is not None
        assert record.error.type == "MapError"
        assert record.error.task == "measure"
        assert words in record.error.message
    empty = expanded(run, plan, "measure", 0)
    assert (empty.status, empty.width, empty.error) == (S.SUCCEEDED, 0, None)


def test_growing_then_grew_moves_the_cursor_to_the_end() -> None:
    plan, run = _map_plan()
    start = growing(run, plan, "measure", 5, None)
    assert (start.status, start.width, start.grown, start.attempts) == (S.RUNNING, 5, 0, ())
    assert is_growing(start)
    part = grew(start, 3)
    assert (part.status, part.grown) == (S.RUNNING, 3)
    assert is_growing(part)
    done = grew(part, 5, done=True)
    assert (done.status, done.grown, done.width) == (S.SUCCEEDED, 5, 5)
    assert not is_growing(done)
    failed_before = start.model_copy(
        update={"status": S.PENDING, "error": ErrorInfo(type="x", message="y")}
    )
    again = growing(run, plan, "measure", 5, failed_before)  # a resume re-pended it
    assert (again.status, again.error, again.grown) == (S.RUNNING, None, 0)


@pytest.mark.parametrize("status", list(TaskStatus))
@pytest.mark.parametrize("grown", [None, 0, 4])
@pytest.mark.parametrize("claimed", [False, True])
def test_is_growing_only_while_running_with_a_cursor_and_no_attempt(
    status: TaskStatus, grown: int | None, claimed: bool
) -> None:
    plan, _ = _map_plan()
    attempts = (Attempt(number=1, status=S.RUNNING, queued_at=T0),) if claimed else ()
    record = ended(plan, "measure", status, grown=grown, width=4, attempts=attempts)
    assert is_growing(record) is (status is S.RUNNING and grown is not None and not claimed)


@PROPERTY
@given(width=st.integers(0, 400), chunks=st.lists(st.integers(1, 150), min_size=1, max_size=40))
def test_growth_cursor_only_moves_forward_and_ends_at_the_width(
    width: int, chunks: list[int]
) -> None:
    """Growing in chunks as the runtime does (each chunk moves the cursor; the last one ends
    the map): the cursor never moves back, the map is growing exactly until it has every
    child, and it ends as `expanded` says a map of that width ends."""
    plan, run = _map_plan()
    record = growing(run, plan, "measure", width, None)
    seen = [record.grown or 0]
    for chunk in chunks:
        if not is_growing(record):
            break
        upto = min(width, (record.grown or 0) + chunk)
        record = grew(record, upto, done=upto >= width)
        assert record.width == width
        seen.append(record.grown or 0)
        assert is_growing(record) is ((record.grown or 0) < width)
    assert seen == sorted(seen)
    if (record.grown or 0) >= width:
        assert record.status is S.SUCCEEDED
        final = expanded(run, plan, "measure", width)
        assert (record.status, record.width) == (final.status, final.width)
    else:
        assert record.status is S.RUNNING


# --- stray ------------------------------------------------------------------------------------


def test_stray_cancels_what_an_ended_run_left_going_and_clears_its_times() -> None:
    plan = make_plan([[]])
    failed_run = make_run(status=RunStatus.FAILED).model_copy(
        update={"error": ErrorInfo(type="TimeoutError", message="late")}
    )
    going = running(plan, make_run(), "t0")
    out = stray(failed_run, going)
    assert out is not None
    assert (out.status, out.lease_until, out.redispatch_at) == (S.CANCELLED, None, None)
    assert out.error == failed_run.error
    own = stray(make_run(status=RunStatus.SUCCEEDED), going)
    assert own is not None
    assert own.error is not None
    assert own.error.type == "Cancelled"
    assert "SUCCEEDED" in own.error.message
    leftover = ended(plan, "t0", S.SUCCEEDED, lease_until=T0)
    cleared = stray(failed_run, leftover)
    assert cleared is not None
    assert (cleared.status, cleared.lease_until) == (S.SUCCEEDED, None)
    assert stray(failed_run, ended(plan, "t0", S.SUCCEEDED)) is None


def test_stray_in_a_running_run_drops_only_times_nothing_acts_on() -> None:
    plan, run = make_plan([[]]), make_run()
    going = running(plan, run, "t0")
    assert stray(run, going) is None  # a live lease
    record, _ = queued(run, plan, "t0", None, T0)
    assert stray(run, record) is None  # a live re-dispatch
    scheduled = record.model_copy(update={"status": S.SCHEDULED, "lease_until": T0})
    out = stray(run, scheduled)
    assert out is not None
    assert (out.status, out.lease_until, out.redispatch_at) == (S.SCHEDULED, None, None)
    assert out.attempts == scheduled.attempts


@PROPERTY
@given(
    status=st.sampled_from(list(TaskStatus)),
    lease=st.booleans(),
    redispatch=st.booleans(),
    run_status=st.sampled_from(list(RunStatus)),
)
def test_stray_settles_a_record_in_one_step(
    status: TaskStatus, lease: bool, redispatch: bool, run_status: RunStatus
) -> None:
    """What stray leaves is what the sweep's queries stop returning: no lease unless going in
    a live run, no re-dispatch unless queued in one, nothing going in an ended run; applied
    again it finds nothing to do; and it drops nothing that still means something."""
    plan = make_plan([[]])
    run = make_run(status=run_status)
    task = ended(
        plan,
        "t0",
        status,
        lease_until=T0 if lease else None,
        redispatch_at=T0 if redispatch else None,
    )
    out = stray(run, task)
    after = out or task
    live = not run_status.terminal
    if live:
        assert after.status is status
        keeps_lease = lease and status in (S.RUNNING, S.RETRYING)
        keeps_redispatch = redispatch and status is S.QUEUED
        assert (after.lease_until is not None) is keeps_lease
        assert (after.redispatch_at is not None) is keeps_redispatch
    else:
        assert after.status.terminal
        assert after.status is (status if status.terminal else S.CANCELLED)
        assert after.lease_until is None
        assert after.redispatch_at is None
    assert (out is None) is (after == task)
    assert stray(run, after) is None


# --- retry_delay ------------------------------------------------------------------------------


def test_retry_delay_takes_the_delays_in_turn_and_repeats_the_last() -> None:
    plan = make_plan([[]], retries=5, delays=(1.0, 4.0, 9.0))
    assert [retry_delay(plan, "r", "t0", n) for n in (1, 2, 3, 4, 5)] == [1, 4, 9, 9, 9]
    single = make_plan([[]], retries=2, delays=3.5)
    assert [retry_delay(single, "r", "t0", n) for n in (1, 2)] == [3.5, 3.5]


@PROPERTY
@given(
    base=st.floats(0, 1000, allow_nan=False),
    jitter=st.floats(0, 2, allow_nan=False),
    number=st.integers(1, 10),
    run_id=st.sampled_from(("r", "s")),
)
def test_retry_delay_jitter_is_bounded_non_negative_and_replayable(
    base: float, jitter: float, number: int, run_id: str
) -> None:
    plan = make_plan([[]], retries=10, delays=base, jitter=jitter)
    got = retry_delay(plan, run_id, "t0", number)
    assert got == retry_delay(plan, run_id, "t0", number)  # the same on every replay
    assert got >= 0
    assert max(0.0, base - base * jitter) - 1e-9 <= got <= base + base * jitter + 1e-9
    if base == 0 or jitter == 0:
        assert got == base


def test_retry_delay_jitter_differs_between_retries_and_runs() -> None:
    plan = make_plan([[]], retries=10, delays=100.0, jitter=0.5)
    draws = {retry_delay(plan, r, "t0", n) for r in ("r", "s") for n in range(1, 6)}
    assert len(draws) == 10  # seeded by run, task and retry: not one fixed offset
