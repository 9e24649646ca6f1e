"""The counters a task's end arrives at (arrive, rollup, decide, run_done, merge), called
directly, and properties of the whole scheme over random DAGs and run-time maps of widths
below, at and above SHARD: the arrivals of every task, applied in any order as the store
applies them (each commit returns only the fields it increments; a full shard rolls up once),
bring every counter exactly to its target, and the one writer that gets there decides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from orchestrator.contracts import ErrorInfo, Run, TaskRun, TaskStatus
from orchestrator.engine import (
    SHARD,
    Plan,
    Rollup,
    arrive,
    blocks,
    decide,
    expand,
    fanin_counter,
    merge,
    rollup,
    run_counter,
    run_done,
)
from tests.engine._build import ended, make_plan, make_run

S = TaskStatus
ZERO = {"done": 0, "bad": 0, "mdone": 0, "more": 0, "need": 0, "width": 0}
NOT_TAKEN = ErrorInfo(type="BranchNotTaken", message="not run: branch not taken")
UPSTREAM = ErrorInfo(type="UpstreamFailed", message="not run: upstream failed")
PROPERTY = settings(
    derandomize=True,
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def top(**fields: int) -> dict[str, int]:
    return ZERO | fields


# --- names, merge -----------------------------------------------------------------------------


def test_counter_names_are_per_flow_attempt() -> None:
    assert run_counter(1) == "run.1"
    assert run_counter(3) == "run.3"
    assert fanin_counter(2, "load[4]") == "fanin.2.load[4]"


def test_merge_sums_per_counter_and_field_into_its_first_argument() -> None:
    into: dict[str, dict[str, int]] = {"a": {"done": 1}, "b": {"bad": 1}}
    more = {"a": {"done": 2, "bad": 1}, "c": {"mdone": 1}}
    out = merge(into, more)
    assert out is into
    assert out == {"a": {"done": 3, "bad": 1}, "b": {"bad": 1}, "c": {"mdone": 1}}
    assert more == {"a": {"done": 2, "bad": 1}, "c": {"mdone": 1}}  # left as it was
    out["c"]["mdone"] += 1
    assert more["c"] == {"mdone": 1}  # no aliasing between what was merged and the sum


# --- arrive -----------------------------------------------------------------------------------


def test_arrive_at_each_child_and_for_a_leaf_at_the_run() -> None:
    plan, run = make_plan([[], [0], [0], [1]]), make_run()
    assert arrive(plan, run, ended(plan, "t0", S.SUCCEEDED)) == {
        "fanin.1.t1": top(done=1),
        "fanin.1.t2": top(done=1),
    }
    assert arrive(plan, run, ended(plan, "t0", S.FAILED)) == {
        "fanin.1.t1": top(done=1, bad=1),
        "fanin.1.t2": top(done=1, bad=1),
    }
    assert arrive(plan, run, ended(plan, "t2", S.SUCCEEDED)) == {"run.1": top(done=1)}
    assert arrive(plan, run, ended(plan, "t3", S.SKIPPED, error=UPSTREAM)) == {
        "run.1": top(done=1, bad=1)
    }
    # A leaf skipped as a branch not taken is as good as succeeded, for the run.
    assert arrive(plan, run, ended(plan, "t3", S.SKIPPED, error=NOT_TAKEN)) == {
        "run.1": top(done=1)
    }
    assert arrive(plan, make_run(attempt=2), ended(plan, "t2", S.FAILED)) == {
        "run.2": top(done=1, bad=1)
    }


def test_arrive_at_a_wide_fan_in_goes_to_the_shard_of_its_position() -> None:
    width = SHARD + 1
    plan, run = make_plan([*([] for _ in range(width)), list(range(width))]), make_run()
    sink = f"t{width}"
    by_position = {plan.position[(sink, f"t{i}")]: f"t{i}" for i in range(width)}
    assert sorted(by_position) == list(range(width))  # each parent has its own place
    assert arrive(plan, run, ended(plan, by_position[0], S.SUCCEEDED)) == {
        f"shard.0.fanin.1.{sink}": {"done": 1, "bad": 0}
    }
    assert arrive(plan, run, ended(plan, by_position[SHARD - 1], S.FAILED)) == {
        f"shard.0.fanin.1.{sink}": {"done": 1, "bad": 1}
    }
    assert arrive(plan, run, ended(plan, by_position[SHARD], S.SUCCEEDED)) == {
        f"shard.1.fanin.1.{sink}": {"done": 1, "bad": 0}
    }
    # A flow retry's counters are never sharded: its targets count only what runs again.
    assert arrive(plan, make_run(attempt=2), ended(plan, by_position[SHARD], S.SUCCEEDED)) == {
        f"fanin.2.{sink}": top(done=1)
    }


def test_arrive_of_many_leaves_goes_to_run_shards_and_at_shard_not_at_all() -> None:
    at = make_plan([[] for _ in range(SHARD)])
    assert arrive(at, make_run(), ended(at, f"t{SHARD - 1}", S.SUCCEEDED)) == {"run.1": top(done=1)}
    over = make_plan([[] for _ in range(2 * SHARD + 5)])
    index = over.leaf_index[f"t{2 * SHARD + 3}"]
    assert arrive(
        over, make_run(), ended(over, f"t{2 * SHARD + 3}", S.SKIPPED, error=UPSTREAM)
    ) == {f"shard.{index // SHARD}.run.1": {"done": 1, "bad": 1}}


def _maps(name: str, count: int) -> tuple[Plan, Run]:
    from tests.flows import dynamic

    params: dict[str, JsonValue] = {"count": count}
    return expand(getattr(dynamic, name).spec, params), make_run(params={"count": count})


def test_arrive_of_a_run_time_map_and_its_children() -> None:
    plan, run = _maps("list_process_summarize", 3)
    names = ended(plan, "names", S.SUCCEEDED, lengths={"measure": 250})
    assert arrive(plan, run, names) == {"fanin.1.measure": top(done=1, width=250)}
    failed_names = ended(plan, "names", S.FAILED, lengths={"measure": 250})
    assert arrive(plan, run, failed_names) == {"fanin.1.measure": top(done=1, bad=1)}
    grown = ended(plan, "measure", S.SUCCEEDED, width=250)
    assert arrive(plan, run, grown) == {"fanin.1.summarize": top(done=1, more=3)}
    narrow = ended(plan, "measure", S.SUCCEEDED, width=SHARD)
    assert arrive(plan, run, narrow) == {"fanin.1.summarize": top(done=1, more=SHARD)}
    assert arrive(plan, make_run(attempt=2), grown) == {"fanin.2.summarize": top(done=1, more=250)}
    cannot = ended(plan, "measure", S.FAILED, error=ErrorInfo(type="MapError", message="x"))
    assert arrive(plan, run, cannot) == {"fanin.1.summarize": top(done=1, bad=1)}
    kid = ended(plan, "measure[201]", S.FAILED, width=250)
    position = plan.position[("summarize", "measure")]
    assert arrive(plan, run, kid) == {
        f"shard.{position}~2~250.fanin.1.summarize": {"mdone": 1, "bad": 1}
    }
    small_kid = ended(plan, "measure[2]", S.SUCCEEDED, width=3)
    assert arrive(plan, run, small_kid) == {"fanin.1.summarize": top(mdone=1)}


def test_arrive_of_a_run_time_maps_leaf_children_at_the_run() -> None:
    plan, run = _maps("returns_map", 3)
    assert arrive(plan, run, ended(plan, "measure", S.SUCCEEDED, width=7)) == {
        "run.1": top(done=1, more=7)
    }
    kid = ended(plan, "measure[6]", S.SKIPPED, width=7, error=UPSTREAM)
    assert arrive(plan, run, kid) == {"run.1": top(mdone=1, bad=1)}


# --- rollup -----------------------------------------------------------------------------------


def test_rollup_of_a_full_shard_once_its_count_is_reached() -> None:
    width = 2 * SHARD + 50
    plan = make_plan([*([] for _ in range(width)), list(range(width))])
    name = f"shard.1.fanin.1.t{width}"
    assert rollup(plan, f"fanin.1.t{width}", {"done": 10**6}) is None  # a top counter
    assert rollup(plan, name, {"done": SHARD - 1, "bad": 3}) is None
    assert rollup(plan, name, {"done": SHARD, "bad": 3}) == Rollup(
        name, f"fanin.1.t{width}", top(done=1, bad=1)
    )
    assert rollup(plan, name, {"done": SHARD}) == Rollup(name, f"fanin.1.t{width}", top(done=1))
    last = f"shard.2.fanin.1.t{width}"  # the short last shard: 50 parents
    assert rollup(plan, last, {"done": 49}) is None
    assert rollup(plan, last, {"done": 50}) == Rollup(last, f"fanin.1.t{width}", top(done=1))


def test_rollup_of_run_shards_and_of_a_maps_child_shards() -> None:
    plan = make_plan([[] for _ in range(SHARD + 1)])
    assert rollup(plan, "shard.1.run.1", {"done": 0}) is None
    assert rollup(plan, "shard.1.run.1", {"done": 1, "bad": 1}) == Rollup(
        "shard.1.run.1", "run.1", top(done=1, bad=1)
    )
    plan, _ = _maps("list_process_summarize", 3)
    name = "shard.0~2~250.fanin.1.summarize"
    assert rollup(plan, name, {"mdone": 49}) is None
    assert rollup(plan, name, {"mdone": 50, "done": 999}) == Rollup(
        name, "fanin.1.summarize", top(mdone=1)
    )
    full = "shard.0~1~250.fanin.1.summarize"
    assert rollup(plan, full, {"mdone": SHARD - 1}) is None
    assert rollup(plan, full, {"mdone": SHARD, "bad": 2}) == Rollup(
        full, "fanin.1.summarize", top(mdone=1, bad=1)
    )


# --- decide, run_done -------------------------------------------------------------------------


def test_decide_waits_for_every_parent_then_queues_or_skips() -> None:
    plan = make_plan([[], [], [0, 1]])
    assert decide(plan, "t2", top(done=1), 1) is None
    assert decide(plan, "t2", top(done=2), 1) == "queue"
    assert decide(plan, "t2", top(done=2, bad=1), 1) == "skip"
    assert decide(plan, "t2", {}, 1) is None


def test_decide_of_a_wide_fan_in_counts_shards() -> None:
    for width, shards in ((SHARD, None), (SHARD + 1, 2), (250, 3)):
        plan = make_plan([*([] for _ in range(width)), list(range(width))])
        child = f"t{width}"
        target = width if shards is None else shards
        assert decide(plan, child, top(done=target - 1), 1) is None
        assert decide(plan, child, top(done=target), 1) == "queue"
        assert decide(plan, child, top(done=target, bad=1), 1) == "skip"


def test_decide_in_a_flow_retry_waits_for_exactly_need() -> None:
    plan = make_plan([*([] for _ in range(250)), list(range(250))])
    assert decide(plan, "t250", top(need=7, done=6), 2) is None
    assert decide(plan, "t250", top(need=7, done=7), 2) == "queue"
    assert decide(plan, "t250", top(need=7, done=7, bad=2), 2) == "skip"
    assert decide(plan, "t250", top(need=0), 2) == "queue"  # nothing of its runs again
    assert decide(plan, "t250", top(need=2, done=2), 1) is None  # need: a retry's target only


def test_decide_waits_for_a_maps_children_too() -> None:
    plan, _ = _maps("list_process_summarize", 3)
    assert decide(plan, "summarize", top(mdone=5), 1) is None  # the map has not arrived
    assert decide(plan, "summarize", top(done=1, more=3, mdone=2), 1) is None
    assert decide(plan, "summarize", top(done=1, more=3, mdone=3), 1) == "queue"
    assert decide(plan, "summarize", top(done=1, more=3, mdone=3, bad=1), 1) == "skip"
    assert decide(plan, "summarize", top(need=1, done=1, more=2, mdone=1), 2) is None


def test_run_done_once_every_leaf_ended() -> None:
    plan = make_plan([[], [0], [0]])  # leaves t1 and t2
    assert not run_done(plan, top(done=1), 1)
    assert run_done(plan, top(done=2), 1)
    assert run_done(plan, top(done=2, bad=2), 1)  # done is done, whatever ended how
    assert not run_done(plan, top(need=2, done=1), 2)
    assert run_done(plan, top(need=1, done=1), 2)
    wide = make_plan([[] for _ in range(250)])
    assert not run_done(wide, top(done=2), 1)
    assert run_done(wide, top(done=3), 1)
    plan, _ = _maps("returns_map", 3)
    assert not run_done(plan, top(done=1, more=2, mdone=1), 1)
    assert run_done(plan, top(done=1, more=2, mdone=2), 1)


# --- the scheme as a whole --------------------------------------------------------------------


@dataclass
class Outcome:
    """What the writers saw: per child, the (step, verdict) of each decision; the steps at
    which the run was seen done; the final counters; the shards rolled up, in order."""

    decided: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    finished: list[int] = field(default_factory=list)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    rolled: list[str] = field(default_factory=list)


def _commit(
    counters: dict[str, dict[str, int]], increments: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    """Apply increments as the store does; return what a commit returns: the new values of
    exactly the fields it incremented (Firestore's transform results)."""
    seen: dict[str, dict[str, int]] = {}
    for name, deltas in increments.items():
        doc = counters.setdefault(name, {})
        for f, d in deltas.items():
            doc[f] = doc.get(f, 0) + d
        seen[name] = {f: doc[f] for f in deltas}
    return seen


def simulate(
    plan: Plan,
    run: Run,
    records: Mapping[str, TaskRun],
    order: Sequence[str],
    targets: Mapping[str, Mapping[str, int]] | None = None,
) -> Outcome:
    """Every task in `order` arrives, each writer rolls up the shards its commit completed
    (a create-only marker: once each) and decides from what its commits returned, as the
    runtime's follow-up does."""
    out = Outcome(counters={k: dict(v) for k, v in (targets or {}).items()})
    for step, key in enumerate(order):
        seen = _commit(out.counters, arrive(plan, run, records[key]))
        for name in list(seen):
            due = rollup(plan, name, seen[name])
            if due is None:
                continue
            assert due.shard == name
            assert name not in out.rolled, f"shard {name} rolled up twice"
            out.rolled.append(name)
            seen.update(_commit(out.counters, {due.top: due.increment}))
        mine = seen.get(run_counter(run.attempt))
        if mine is not None and run_done(plan, mine, run.attempt):
            out.finished.append(step)
        for child in plan.children[key]:
            fanin = seen.get(fanin_counter(run.attempt, child), {})
            verdict = decide(plan, child, fanin, run.attempt)
            if verdict is not None:
                out.decided.setdefault(child, []).append((step, verdict))
    return out


def _sizes(width: int) -> list[int]:
    """The shards of a counter over `width` arrivals, as SHARD-sized groups (one, unsharded,
    at or below SHARD)."""
    return [min(SHARD, width - i) for i in range(0, width, SHARD)] if width > SHARD else [width]


def check_exact(plan: Plan, run: Run, out: Outcome, order: Sequence[str]) -> None:
    """Every static counter of flow attempt 1 holds exactly its target, every shard exactly
    its size, and every full shard rolled up once."""
    if run.attempt > 1:
        return
    expected_shards = set()
    tops = {fanin_counter(1, c): len(plan.tasks[c].parents) for c in plan.tasks}
    tops[run_counter(1)] = len(plan.leaves)
    for name, width in tops.items():
        if width == 0:
            continue
        sizes = _sizes(width)
        got = out.counters.get(name, {})
        assert got.get("done", 0) == (len(sizes) if width > SHARD else width), name
        if width > SHARD:
            for i, size in enumerate(sizes):
                shard = f"shard.{i}.{name}"
                assert out.counters[shard]["done"] == size, shard
                expected_shards.add(shard)
    static = {n for n in out.rolled if "~" not in n}
    assert static == expected_shards
    assert len(order) == len(set(order))


@st.composite
def wide_dags(draw: st.DrawFn, width: int) -> tuple[list[list[int]], bool]:
    """A small random DAG, then `width` tasks each fed by at most one of its tasks, then
    either a sink fed by exactly `width` tasks (a fan-in of `width`) or none (`width` leaves).
    Every small task feeds something, so the leaves are exactly the wide layer or the sink."""
    small = draw(st.integers(1, 5))
    parents = [
        sorted(draw(st.sets(st.integers(0, i - 1), max_size=2))) if i else [] for i in range(small)
    ]
    feeds = draw(st.lists(st.integers(-1, small - 1), min_size=width, max_size=width))
    wide = [[f] if f >= 0 else [] for f in feeds]
    fed = {p for ps in parents for p in ps} | {f for f in feeds if f >= 0}
    for i in range(small):
        if i not in fed:
            wide[i % width] = sorted({*wide[i % width], i})
    sink = draw(st.booleans())
    parents += wide
    if sink:
        parents.append(list(range(small, small + width)))
    return parents, sink


STATUSES = ("ok", "failed", "skipped", "not-taken")


def record_of(plan: Plan, key: str, how: str) -> TaskRun:
    return {
        "ok": lambda: ended(plan, key, S.SUCCEEDED),
        "failed": lambda: ended(plan, key, S.FAILED, error=ErrorInfo(type="E", message="x")),
        "skipped": lambda: ended(plan, key, S.SKIPPED, error=UPSTREAM),
        "not-taken": lambda: ended(plan, key, S.SKIPPED, error=NOT_TAKEN),
    }[how]()


@st.composite
def endings(draw: st.DrawFn, n: int) -> list[str]:
    """How each of `n` tasks ended: mostly succeeded with a few exceptions (so wide fan-ins
    are also queued), or anything at all."""
    if n == 0:
        return []
    if draw(st.booleans()):
        out = ["ok"] * n
        for i, how in draw(
            st.dictionaries(st.integers(0, n - 1), st.sampled_from(STATUSES), max_size=3)
        ).items():
            out[i] = how
        return out
    return draw(st.lists(st.sampled_from(STATUSES), min_size=n, max_size=n))


def expectations(
    plan: Plan, records: Mapping[str, TaskRun], order: Sequence[str]
) -> tuple[dict[str, list[tuple[int, str]]], list[int]]:
    """Each child decided once, by the arrival of its last parent: 'skip' exactly when some
    parent blocks it; the run done once, at the arrival of its last leaf."""
    at = {k: i for i, k in enumerate(order)}
    decided = {}
    for key, planned in plan.tasks.items():
        if planned.parents:
            last = max(at[p] for p in planned.parents)
            skip = any(blocks(plan, records[p], key) for p in planned.parents)
            decided[key] = [(last, "skip" if skip else "queue")]
    return decided, [max(at[k] for k in plan.leaves)]


def retry_targets(plan: Plan, attempt: int) -> dict[str, dict[str, int]]:
    """A flow retry in which every task runs again: each counter waits for all its arrivals."""
    out = {fanin_counter(attempt, k): {"need": len(t.parents)} for k, t in plan.tasks.items()}
    out[run_counter(attempt)] = {"need": len(plan.leaves)}
    return out


@pytest.mark.parametrize("width", [7, SHARD - 1, SHARD, SHARD + 1, 250])
@PROPERTY
@given(data=st.data())
def test_arrivals_in_any_order_decide_each_child_and_the_run_exactly_once(
    width: int, data: st.DataObject
) -> None:
    parents, _ = data.draw(wide_dags(width), label="dag")
    plan = make_plan(parents)
    keys = list(plan.tasks)
    hows = data.draw(endings(len(keys)), label="endings")
    records = {k: record_of(plan, k, how) for k, how in zip(keys, hows, strict=True)}
    order = data.draw(st.permutations(keys), label="order")
    decided, finished = expectations(plan, records, order)
    run = make_run()
    sharded = simulate(plan, run, records, order)
    assert sharded.decided == decided
    assert sharded.finished == finished
    check_exact(plan, run, sharded, order)
    bad_leaf = any(
        not (records[k].status is S.SUCCEEDED or records[k].error == NOT_TAKEN) for k in plan.leaves
    )
    assert (sharded.counters[run_counter(1)]["bad"] > 0) is bad_leaf
    # A flow retry's unsharded counters, waiting for the same arrivals, decide the same.
    retry = make_run(attempt=2)
    unsharded = simulate(plan, retry, records, order, retry_targets(plan, 2))
    assert unsharded.decided == decided
    assert unsharded.finished == finished
    assert unsharded.rolled == []
    assert (unsharded.counters[run_counter(2)]["bad"] > 0) is bad_leaf


@pytest.mark.parametrize("flow", ["list_process_summarize", "returns_map", "failures_allowed"])
@pytest.mark.parametrize("width", [0, 1, SHARD - 1, SHARD, SHARD + 1, 250])
@PROPERTY
@given(data=st.data())
def test_a_run_time_maps_children_in_any_order_decide_its_consumer_exactly_once(
    flow: str, width: int, data: st.DataObject
) -> None:
    """The producer arrives first (its length sizes the map); then the map's own arrival
    (after its children exist) and its children's, in any order: the consumer, or the run
    when the map is a leaf, is decided once, by the last of them, 'skip' exactly when the map
    or one of its children blocks; a flow retry's unsharded counters decide the same."""
    plan, _ = _maps(flow, 3)
    (producer,) = plan.roots
    (mapped,) = plan.dynamic
    fails_to_grow = data.draw(st.booleans(), label="map error") if width else False
    records = {producer: ended(plan, producer, S.SUCCEEDED, lengths={mapped: width})}
    if fails_to_grow:
        error = ErrorInfo(type="MapError", message="x")
        records[mapped] = ended(plan, mapped, S.FAILED, error=error)
    else:
        records[mapped] = ended(plan, mapped, S.SUCCEEDED, width=width, grown=width)
        hows = data.draw(endings(width), label="children")
        for i, how in enumerate(hows):
            kid = record_of(plan, f"{mapped}[{i}]", how)
            records[kid.key] = kid.model_copy(update={"width": width})
    rest = data.draw(st.permutations([k for k in records if k != producer]), label="order")
    order = [producer, *rest]
    consumers = plan.children[mapped]
    group = [k for k in records if k != producer]
    last = max(order.index(k) for k in group)
    skip = any(blocks(plan, records[k], c) for k in group for c in consumers)
    for attempt in (1, 2):
        current = make_run(attempt=attempt, params={"count": 3})
        targets = None
        if attempt == 2:  # the map runs again: its own arrival brings its children's count
            targets = retry_targets(plan, 2)
        out = simulate(plan, current, records, order, targets)
        assert out.decided.pop(mapped) == [(0, "queue")]
        expected = {c: [(last, "skip" if skip else "queue")] for c in consumers}
        assert out.decided == expected
        if plan.is_leaf(mapped):
            assert out.finished == [last]
        else:
            assert out.finished == []  # its consumer has not arrived
        width_seen = out.counters[fanin_counter(attempt, mapped)]["width"]
        assert width_seen == width
        kid_shards = {n for n in out.counters if "~" in n}
        assert set(out.rolled) == kid_shards
        if attempt == 1 and width > SHARD and not fails_to_grow:
            assert [out.counters[n]["mdone"] for n in sorted(kid_shards)] == _sizes(width)
        else:
            assert kid_shards == set()
