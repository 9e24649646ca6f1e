"""Who blocks whom, and when a run fails: blocks (with not_chosen and not_taken), skip_reason
(through `skipped`), consumed, returned and returned_failure (through the whole-run finish,
their only caller), returns_tolerated, and growing a plan (lengths, grow, grown); plus a
property that the per-task finish and the whole-run finish agree."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from orchestrator.contracts import (
    NO_PATH,
    NOT_A_LIST,
    ErrorInfo,
    LiteralValue,
    ResultRef,
    RunStatus,
    TaskRun,
    TaskStatus,
)
from orchestrator.engine import (
    Dispatch,
    FinishRun,
    Plan,
    Reconcile,
    RunState,
    StartRun,
    arrive,
    blocks,
    expand,
    grow,
    grown,
    lengths,
    merge,
    returns_tolerated,
    run_counter,
    skipped,
    whole_run,
)
from tests.engine._build import T0, ended, failed, make_plan, make_run, spec_of, succeeded

S = TaskStatus
NOT_TAKEN = ErrorInfo(type="BranchNotTaken", message="not run: branch not taken")
UPSTREAM = ErrorInfo(type="UpstreamFailed", message="not run: upstream failed")
BOOM = ErrorInfo(type="E", message="boom")
PROPERTY = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _branching() -> Plan:
    from tests.flows.branching import branching

    return expand(branching.spec, {"n": 3})


def _dynamic(name: str, count: int = 3) -> Plan:
    from tests.flows import dynamic

    params: dict[str, JsonValue] = {"count": count}
    return expand(getattr(dynamic, name).spec, params)


# --- blocks -----------------------------------------------------------------------------------


def test_a_parent_blocks_unless_it_succeeded() -> None:
    plan = make_plan([[], [0]])
    assert not blocks(plan, ended(plan, "t0", S.SUCCEEDED), "t1")
    assert blocks(plan, ended(plan, "t0", S.FAILED, error=BOOM), "t1")
    assert blocks(plan, ended(plan, "t0", S.SKIPPED, error=UPSTREAM), "t1")
    assert blocks(plan, ended(plan, "t0", S.CANCELLED), "t1")
    # Not taken blocks too, unless the child reads that parent as a branch's result.
    assert blocks(plan, ended(plan, "t0", S.SKIPPED, error=NOT_TAKEN), "t1")


def test_allow_failure_lets_any_ending_of_that_parent_through() -> None:
    plan = make_plan([[], [], [0, 1]], allow={2: [0]})
    for status, error in ((S.FAILED, BOOM), (S.SKIPPED, UPSTREAM), (S.SKIPPED, NOT_TAKEN)):
        assert not blocks(plan, ended(plan, "t0", status, error=error), "t2")
        assert blocks(plan, ended(plan, "t1", status, error=error), "t2")  # not tolerated


def test_a_gate_blocks_the_branches_it_did_not_choose() -> None:
    plan = _branching()
    chose_then = ended(plan, "branch", S.SUCCEEDED, choice="then")
    assert not blocks(plan, chose_then, "label")  # in `then`
    assert blocks(plan, chose_then, "label-2")  # in `otherwise`
    chose_other = ended(plan, "branch", S.SUCCEEDED, choice="otherwise")
    assert blocks(plan, chose_other, "label")
    assert not blocks(plan, chose_other, "label-2")
    assert not blocks(plan, chose_then, "branch-result")  # the join is in no branch
    # Every task of the branch not chosen sits in it, however deep.
    assert blocks(plan, chose_other, "decorate")
    assert not blocks(plan, chose_then, "decorate")


def test_a_branch_not_taken_does_not_block_its_join_but_a_failure_in_it_does() -> None:
    plan = _branching()
    assert not blocks(plan, ended(plan, "decorate", S.SKIPPED, error=NOT_TAKEN), "branch-result")
    assert blocks(plan, ended(plan, "decorate", S.SKIPPED, error=UPSTREAM), "branch-result")
    assert blocks(plan, ended(plan, "decorate", S.FAILED, error=BOOM), "branch-result")
    # label-2 is not among decorate's `untaken`: its not-taken skip blocks decorate's chain.
    assert blocks(plan, ended(plan, "label", S.SKIPPED, error=NOT_TAKEN), "decorate")


def test_a_run_time_maps_child_is_tolerated_as_its_map_is() -> None:
    plan = _dynamic("failures_allowed")
    kid = ended(plan, "fragile[2]", S.FAILED, error=BOOM)
    assert not blocks(plan, kid, "summarize-any")
    plan = _dynamic("list_process_summarize")
    assert blocks(plan, ended(plan, "measure[2]", S.FAILED, error=BOOM), "summarize")


# --- skip_reason, through skipped -------------------------------------------------------------


def test_skipped_in_a_branch_not_taken_names_the_gate_and_its_choice() -> None:
    plan, run = _branching(), make_run(params={"n": 3})
    gate = ended(plan, "branch", S.SUCCEEDED, choice="otherwise")
    record = skipped(run, plan, "label", None, [gate])
    assert record.error == ErrorInfo(
        type="BranchNotTaken",
        message="not run: branch 'then' of 'branch' was not taken (it chose 'otherwise')",
        task="label",
    )
    deeper = skipped(run, plan, "decorate", None, [record])
    assert deeper.error == record.error.model_copy(update={"task": "decorate"})


def test_skipped_after_a_failure_names_the_first_blocking_parent() -> None:
    plan, run = make_plan([[], [], [], [0, 1, 2]], allow={3: [0]}), make_run()
    parents = [
        ended(plan, "t0", S.FAILED, error=BOOM),  # tolerated: not the cause
        ended(plan, "t1", S.SUCCEEDED),
        ended(plan, "t2", S.SKIPPED, error=UPSTREAM),
    ]
    record = skipped(run, plan, "t3", None, parents)
    assert record.status is S.SKIPPED
    assert record.error == ErrorInfo(
        type="UpstreamFailed", message="not run: upstream task 't2' ended SKIPPED", task="t3"
    )
    again = skipped(run, plan, "t3", record.model_copy(update={"status": S.FAILED}), parents)
    assert again.status is S.SKIPPED  # a flow retry's record is updated, not made anew


# --- consumed, returned, returned_failure: how a run whose tasks all ended finishes ---------


def finish(plan: Plan, records: dict[str, TaskRun]) -> FinishRun:
    """The whole-run finish of a running run whose tasks all ended as `records` say."""
    state = RunState(make_run(), records)
    commands = whole_run(plan, state, Reconcile(), T0 + timedelta(minutes=1)).commands
    (done,) = [c for c in commands if isinstance(c, FinishRun)]
    return done


def _ended_as(plan: Plan, statuses: dict[str, TaskStatus]) -> dict[str, TaskRun]:
    errors = {S.FAILED: BOOM, S.SKIPPED: UPSTREAM}
    return {k: ended(plan, k, s, error=errors.get(s)) for k, s in statuses.items()}


def test_a_failure_every_child_allows_is_consumed() -> None:
    plan = make_plan([[], [0]], allow={1: [0]})
    done = finish(plan, _ended_as(plan, {"t0": S.FAILED, "t1": S.SUCCEEDED}))
    assert done == FinishRun(RunStatus.SUCCEEDED, None, 1)


def test_a_failure_one_child_does_not_allow_fails_the_run() -> None:
    plan = make_plan([[], [0], [0]], allow={1: [0]}, result=1)
    records = _ended_as(plan, {"t0": S.FAILED, "t1": S.SUCCEEDED, "t2": S.SKIPPED})
    done = finish(plan, records)
    assert done.status is RunStatus.FAILED
    assert done.error == BOOM


def test_a_failed_leaf_is_never_consumed() -> None:
    plan = make_plan([[], []], result=0)
    done = finish(plan, _ended_as(plan, {"t0": S.SUCCEEDED, "t1": S.FAILED}))
    assert done.status is RunStatus.FAILED


def test_a_tolerated_failure_the_flow_returns_fails_the_run() -> None:
    plan = make_plan([[], [0]], allow={1: [0]}, result=0)
    assert returns_tolerated(plan)
    done = finish(plan, _ended_as(plan, {"t0": S.FAILED, "t1": S.SUCCEEDED}))
    assert done.status is RunStatus.FAILED
    assert done.error == BOOM


def test_a_tolerated_child_of_a_run_time_map_the_flow_returns_fails_the_run() -> None:
    plan = _dynamic("failures_allowed")
    records = {
        "names": ended(plan, "names", S.SUCCEEDED, lengths={"fragile": 3}),
        "fragile": ended(plan, "fragile", S.SUCCEEDED, width=3, grown=3),
        "summarize-any": ended(plan, "summarize-any", S.SUCCEEDED),
    }
    for i in range(3):
        status = S.FAILED if i == 1 else S.SUCCEEDED
        error = BOOM if status is S.FAILED else None
        records[f"fragile[{i}]"] = ended(plan, f"fragile[{i}]", status, error=error)
    whole = grown(plan, records)
    assert finish(whole, records).status is RunStatus.SUCCEEDED  # consumed by summarize-any
    returning = whole.spec.model_copy(update={"result": ResultRef(node="fragile")})
    plan = expand(returning, {"count": 3})
    assert returns_tolerated(plan)
    done = finish(grown(plan, records), records)
    assert done.status is RunStatus.FAILED


def test_returns_tolerated_only_when_the_result_reads_an_allowed_failure() -> None:
    assert not returns_tolerated(make_plan([[], [0]], allow={1: [0]}))  # returns t1
    assert returns_tolerated(make_plan([[], [0]], allow={1: [0]}, result=0))
    assert not returns_tolerated(make_plan([[], [0]], result=0))
    assert not returns_tolerated(make_plan([[], [0]], allow={1: [0]}, result=None))
    assert returns_tolerated(_dynamic("failures_allowed")) is False


# --- the per-task finish and the whole-run finish agree ---------------------------------------


@st.composite
def tolerant_dags(draw: st.DrawFn, allow: bool) -> tuple[list[list[int]], dict[int, list[int]]]:
    n = draw(st.integers(1, 10))
    parents = [
        sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(n)
    ]
    allowed = {}
    if allow:
        for i, ps in enumerate(parents):
            if ps:
                allowed[i] = sorted(draw(st.sets(st.sampled_from(ps))))
    return parents, allowed


def _run_whole(plan: Plan, data: st.DataObject) -> RunState:
    """The whole-run engine from start to end, each attempt succeeding or failing at random."""
    pending = make_run(status=RunStatus.PENDING).model_copy(update={"started_at": None})
    tr = whole_run(plan, RunState(pending, {}), StartRun(), T0)
    inflight = [c for c in tr.commands if isinstance(c, Dispatch)]
    state = tr.state
    while inflight:
        d = inflight.pop(data.draw(st.integers(0, len(inflight) - 1)))
        ok = data.draw(st.booleans())
        event = succeeded(d.key, d.attempt, "x") if ok else failed(d.key, d.attempt, "x")
        tr = whole_run(plan, state, event, T0)
        state = tr.state
        inflight += [c for c in tr.commands if isinstance(c, Dispatch)]
    assert state.run.status.terminal
    return state


def _per_task_says_succeeded(plan: Plan, state: RunState) -> bool:
    """What production's per-task finish does with the same records: the run counter's `bad`
    and returns_tolerated decide whether it succeeds at once (else it asks the whole run)."""
    counts: dict[str, dict[str, int]] = {}
    for key in plan.tasks:
        merge(counts, arrive(plan, make_run(), state.task(plan, key)))
    return counts[run_counter(1)]["bad"] == 0 and not returns_tolerated(plan)


@PROPERTY
@given(data=st.data())
def test_per_task_and_whole_run_finishes_agree_without_allow_failure(data: st.DataObject) -> None:
    parents, _ = data.draw(tolerant_dags(False))
    plan = make_plan(parents)
    state = _run_whole(plan, data)
    if _per_task_says_succeeded(plan, state):
        assert state.run.status is RunStatus.SUCCEEDED
    else:
        assert state.run.status is RunStatus.FAILED


def test_a_skip_allowed_downstream_finishes_the_same_on_both_paths() -> None:
    """t0 -> t1 -> t2, t2 = tolerant(allow_failure(t1)), t0 fails: t1 is skipped, t2 runs past
    it and succeeds, and the run succeeds on both paths: the failure was run past."""
    plan = make_plan([[], [0], [1]], allow={2: [1]})
    records = {
        "t0": ended(plan, "t0", S.FAILED, error=BOOM),
        "t1": ended(plan, "t1", S.SKIPPED, error=UPSTREAM),
        "t2": ended(plan, "t2", S.SUCCEEDED),
    }
    state = RunState(make_run(), records)
    whole = finish(plan, records)
    assert whole.status is RunStatus.SUCCEEDED
    assert _per_task_says_succeeded(plan, state) is True


@PROPERTY
@given(data=st.data())
def test_per_task_and_whole_run_finishes_agree_with_allow_failure(data: st.DataObject) -> None:
    """With allow_failure anywhere, the two finishes agree."""
    parents, allowed = data.draw(tolerant_dags(True))
    plan = make_plan(parents, allow=allowed)
    state = _run_whole(plan, data)
    assert _per_task_says_succeeded(plan, state) is (state.run.status is RunStatus.SUCCEEDED)


# --- growing a plan: lengths, grow, grown -----------------------------------------------------


def test_lengths_of_the_lists_a_producers_maps_iterate() -> None:
    plan = _dynamic("list_process_summarize")
    assert lengths(plan, "names", ["a", "b"]) == {"measure": 2}
    assert lengths(plan, "names", ("a",)) == {"measure": 1}
    assert lengths(plan, "names", "ab") == {"measure": NOT_A_LIST}
    assert lengths(plan, "measure", [1, 2]) == {}  # nothing maps over measure's result
    part = _dynamic("map_a_part")
    assert lengths(part, "listing", {"items": [1, 2, 3], "n": 3}) == {"size-of": 3}
    assert lengths(part, "listing", {"n": 3}) == {"size-of": NO_PATH}
    assert lengths(part, "listing", {"items": 3}) == {"size-of": NOT_A_LIST}
    two = _dynamic("two_maps")
    got = lengths(two, "two-lists", {"a": [1], "b": [1, 2]})
    assert got == {"measure": 1, "measure-2": 2, "measure-3": 1}  # "a" is mapped twice


def test_grow_adds_a_maps_children_and_makes_its_consumers_wait_for_them() -> None:
    plan = _dynamic("list_process_summarize")
    assert grow(plan, {}) is plan
    big = grow(plan, {"measure": 3})
    assert [k for k in big.tasks if k.startswith("measure[")] == [
        "measure[0]",
        "measure[1]",
        "measure[2]",
    ]
    assert big.tasks["summarize"].parents == ("measure", "measure[0]", "measure[1]", "measure[2]")
    assert big.children["measure[1]"] == ("summarize",)
    assert big.members["measure"] == ("measure[0]", "measure[1]", "measure[2]")
    assert big.leaves == frozenset({"summarize"})
    assert big.widths == {"measure": 3}
    assert big.map_of("measure[1]") == "measure"
    none = grow(plan, {"measure": 0})
    assert none.tasks["summarize"].parents == ("measure",)
    assert none.members["measure"] == ()


def test_grow_keeps_a_maps_leaf_children_as_leaves_and_tolerance_as_the_maps() -> None:
    plan = grow(_dynamic("returns_map"), {"measure": 2})
    assert plan.leaves == frozenset({"measure", "measure[0]", "measure[1]"})
    assert set(plan.leaf_index) == set(plan.leaves)
    tolerant = grow(_dynamic("failures_allowed"), {"fragile": 2})
    assert tolerant.tasks["summarize-any"].tolerated == {"fragile", "fragile[0]", "fragile[1]"}


def test_grown_takes_the_widths_maps_recorded() -> None:
    plan = _dynamic("nested")
    records = {
        "measure": ended(plan, "measure", S.SUCCEEDED, width=2),
        "double": ended(plan, "double", S.RUNNING, width=2, grown=1),
        "names": ended(plan, "names", S.SUCCEEDED, width=9),  # not a run-time map
        "summarize": ended(plan, "summarize", S.PENDING),
    }
    got = grown(plan, records)
    assert got.widths == {"measure": 2, "double": 2}
    assert got.tasks["double[1]"].parents == ("double",)
    assert got.tasks["double"].parents == ("measure", "measure[0]", "measure[1]")
    assert got.tasks["summarize"].parents == ("double", "double[0]", "double[1]")
    assert grown(plan, {"measure": ended(plan, "measure", S.RUNNING)}) is plan


def test_a_literal_result_returns_nothing() -> None:
    plan = expand(spec_of([[], [0]], result=None), {})
    assert isinstance(plan.spec.result, LiteralValue)
    done = finish(plan, _ended_as(plan, {"t0": S.SUCCEEDED, "t1": S.SUCCEEDED}))
    assert done == FinishRun(RunStatus.SUCCEEDED, None, 1)


def test_the_run_names_its_first_failure_that_a_child_did_not_run_past() -> None:
    """t0 fails: t1 runs past it, t2 does not (it is skipped), so t0's failure is the run's;
    t3 fails too, later by key. The run's error is t0's, the first one not run past."""
    plan = make_plan([[], [0], [0], []], allow={1: [0]})
    other = ErrorInfo(type="ValueError", message="the other failure", task="t3")
    records = {
        "t0": ended(plan, "t0", S.FAILED, error=BOOM),
        "t1": ended(plan, "t1", S.SUCCEEDED),
        "t2": ended(plan, "t2", S.SKIPPED, error=UPSTREAM),
        "t3": ended(plan, "t3", S.FAILED, error=other),
    }
    done = finish(plan, records)
    assert done.status is RunStatus.FAILED
    assert done.error == BOOM
