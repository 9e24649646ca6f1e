"""Flows for the interleaving harness (tests/runtime/test_interleavings.py).

Each task body reports its execution, under one process-wide lock, to the recorder the harness
sets around each worker call (`CURRENT`: which run, task key and attempt the call runs), then
fails its first `fails[name]` attempts on purpose (the attempt as the run context tells it, so
the same flows also run in-process, outside the harness: the machine's reference runs). The
harness keeps the counts per example (run ids repeat across examples). The plain logic
(`plus_one`, ...) is shared with `expected`, which computes what a run of the first, static
family must end with without running anything.

The later flows cover every construct beside the static core: gates (`branch`, `switch`),
run-time and nested run-time maps, subflows (called, mapped, and mapped over), `allow_failure`
and a deferred task completed by the sweeper's checks. Each task retries once after a delay.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from orchestrator import allow_failure, branch, context, flow, switch, task, unmapped
from orchestrator.contracts import parse_rate
from orchestrator.runtime import Deferred, deferrable
from orchestrator.waits import Since, kumoflow_event, pause, sleep, wait_for_event

RETRIES = 1  # every task: a task failing more than once fails its run
RETRY_DELAY_S = 5.0


@dataclass(frozen=True)
class Caller:
    """Set by the harness around one worker call: who runs which requested attempt."""

    run_id: str
    key: str
    attempt: int
    instance: int
    # Called from the task body, before it decides anything: records the execution.
    record: Callable[[Caller, str], None]


CURRENT: ContextVar[Caller | None] = ContextVar("interleaved_caller", default=None)
LOCK = threading.Lock()


class PlannedFailure(RuntimeError):
    pass


def _ran(name: str, fails: dict[str, int]) -> None:
    caller = CURRENT.get()
    info = context.task_run
    if info is None:
        raise AssertionError(f"task {name!r} ran outside a run")
    if caller is not None:
        if caller.attempt != info.run_count:
            raise AssertionError(f"{name}: request attempt {caller.attempt}, run {info.run_count}")
        with LOCK:
            caller.record(caller, name)
    if info.run_count <= fails.get(name, 0):
        raise PlannedFailure(f"planned failure of {name} attempt {info.run_count}")


# --- plain logic, shared with `expected` -----------------------------------------------------


def plus_one(x: int) -> int:
    return x + 1


def doubled(v: int) -> int:
    return 2 * v


def plus_ten(v: int) -> int:
    return v + 10


def scaled(x: int, offset: int) -> int:
    return 3 * x + offset


# --- tasks ---------------------------------------------------------------------------------


@task(name="base", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def base(x: int, fails: dict[str, int]) -> int:
    _ran("base", fails)
    return plus_one(x)


@task(name="left", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def left(v: int, fails: dict[str, int]) -> int:
    _ran("left", fails)
    return doubled(v)


@task(name="right", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def right(v: int, fails: dict[str, int]) -> int:
    _ran("right", fails)
    return plus_ten(v)


@task(name="item", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def item(x: int, offset: int, fails: dict[str, int]) -> int:
    _ran(f"item:{x}", fails)
    return scaled(x, offset)


@task(name="gather", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def gather(values: list[int], fails: dict[str, int]) -> int:
    _ran("gather", fails)
    return sum(values)


@task(name="listed", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def listed(items: list[int], fails: dict[str, int]) -> dict[str, list[int]]:
    _ran("listed", fails)
    return {"items": list(items)}


LIMIT_KEY = "il-items"  # the concurrency key of `limited`; the harness sets its limit
KEYED = tuple(f"{LIMIT_KEY}-{n}" for n in range(2))  # the keys `keyed` computes from its x
# the names of the tasks that take slots
LIMITED_TASKS = ("limited", "urgent", "keyed", "rated-urgent")
RATE_KEY = "il-rate"  # the rate key of `rated` and `rated-urgent`
RATE = parse_rate(f"{RATE_KEY}:2/m")  # a minute of virtual time: the machine's jumps cross it
RATED_TASKS = ("rated", "rated-urgent")  # the names of the tasks that take its permits


@task(name="limited", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, concurrency=LIMIT_KEY)
def limited(x: int, offset: int, fails: dict[str, int]) -> int:
    _ran(f"item:{x}", fails)
    return scaled(x, offset)


@task(name="keyed", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S,
      concurrency=lambda x: f"{LIMIT_KEY}-{x % 2}")  # fmt: skip
def keyed(x: int, offset: int, fails: dict[str, int]) -> int:
    _ran(f"item:{x}", fails)
    return scaled(x, offset)


@task(name="urgent", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, concurrency=LIMIT_KEY,
      priority=5)  # fmt: skip
def urgent(v: int, fails: dict[str, int]) -> int:
    _ran("left", fails)
    return doubled(v)


# --- flows ---------------------------------------------------------------------------------


@flow(name="il-chain")
def chain(x: int, fails: dict[str, int]) -> int:
    return right(left(base(x, fails), fails), fails)


# --- state hooks: each records its call to the harness (HOOKED, set around a hooks handler) ---

HOOKED: ContextVar[Callable[[str, str, int, str], None] | None] = ContextVar(
    "interleaved_hooked", default=None
)


def _hooked(who: str, run_id: str, attempt: int, state: str) -> None:
    record = HOOKED.get()
    if record is not None:  # None: an in-process reference run
        with LOCK:
            record(who, run_id, attempt, state)


def flow_hook(flow: Any, flow_run: Any, state: Any) -> None:
    _hooked("flow", flow_run.id, flow_run.run_count, state.name)


def task_hook(task: Any, task_run: Any, state: Any) -> None:
    """Records the task's attempt (a task's hooks run at its end, within a flow attempt)."""
    run_id = task_run.id.rpartition("/")[0]
    _hooked(f"task:{task_run.task_key}", run_id, task_run.run_count, state.name)


hooked_base = base.with_options(
    on_failure=[task_hook], on_completion=[task_hook], on_cancellation=[task_hook]
)


@flow(
    name="il-hooked",
    on_failure=[flow_hook],
    on_completion=[flow_hook],
    on_cancellation=[flow_hook],
)
def hooked(x: int, fails: dict[str, int]) -> int:
    return right(left(hooked_base(x, fails), fails), fails)


@flow(name="il-limited-map")
def limited_map(x: int, items: list[int], fails: dict[str, int]) -> dict[str, Any]:
    b = base(x, fails)
    return {
        "left": urgent(b, fails),
        "items": limited.map(items, offset=unmapped(b), fails=unmapped(fails)),
    }


@flow(name="il-keyed-map")
def keyed_map(x: int, items: list[int], fails: dict[str, int]) -> dict[str, Any]:
    b = base(x, fails)
    return {
        "left": urgent(b, fails),
        "items": keyed.map(items, offset=unmapped(b), fails=unmapped(fails)),
    }


MAX_ACTIVE_RUNS = 1  # of il-one-at-a-time


@flow(name="il-one-at-a-time", max_active_runs=MAX_ACTIVE_RUNS)
def one_at_a_time(x: int, fails: dict[str, int]) -> int:
    return right(left(base(x, fails), fails), fails)


@task(name="rated", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, rate=RATE)
def rated(x: int, offset: int, fails: dict[str, int]) -> int:
    _ran(f"item:{x}", fails)
    return scaled(x, offset)


# A rate and a concurrency key at once: the permit is taken first, the slot second.
@task(name="rated-urgent", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, rate=RATE,
      concurrency=LIMIT_KEY, priority=5)  # fmt: skip
def rated_urgent(v: int, fails: dict[str, int]) -> int:
    _ran("left", fails)
    return doubled(v)


@flow(name="il-rated-map")
def rated_map(x: int, items: list[int], fails: dict[str, int]) -> dict[str, Any]:
    b = base(x, fails)
    return {
        "left": rated_urgent(x, fails),  # a root: dispatched before its record exists
        "items": rated.map(items, offset=unmapped(b), fails=unmapped(fails)),
    }


@flow(name="il-diamond")
def diamond(x: int, fails: dict[str, int]) -> int:
    b = base(x, fails)
    return gather([left(b, fails), right(b, fails)], fails)


@flow(name="il-map-fan-in")
def map_fan_in(x: int, items: list[int], fails: dict[str, int]) -> int:
    b = base(x, fails)
    return gather(item.map(items, offset=unmapped(b), fails=unmapped(fails)), fails)


@flow(name="il-two-sinks")
def two_sinks(x: int, items: list[int], fails: dict[str, int]) -> dict[str, Any]:
    b = base(x, fails)
    return {
        "left": left(b, fails),
        "right": right(b, fails),
        "items": item.map(items, offset=unmapped(b), fails=unmapped(fails)),
    }


@flow(name="il-returns-map")
def returns_map(items: list[int], fails: dict[str, int]) -> list[int]:
    return item.map(items, offset=unmapped(0), fails=unmapped(fails))


@flow(name="il-run-time-map")
def run_time_map(x: int, items: list[int], fails: dict[str, int]) -> int:
    b = base(x, fails)
    found = listed(items, fails)["items"]  # a list known only once `listed` ran
    return gather(item.map(found, offset=unmapped(b), fails=unmapped(fails)), fails)


@flow(name="il-returns-run-time-map")
def returns_run_time_map(items: list[int], fails: dict[str, int]) -> list[int]:
    return item.map(listed(items, fails)["items"], offset=unmapped(0), fails=unmapped(fails))


# --- every other construct (the machine's later features) ---------------------------------


@task(name="is-even", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def is_even(v: int, fails: dict[str, int]) -> bool:
    _ran("is-even", fails)
    return v % 2 == 0


@task(name="kind", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def kind(v: int, fails: dict[str, int]) -> int:
    _ran("kind", fails)
    return v % 3


@task(name="bump", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def bump(v: int, fails: dict[str, int]) -> int:
    _ran(f"bump:{v}", fails)
    return v + 1


@task(name="count-ok", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def count_ok(values: Sequence[int | None], fails: dict[str, int]) -> dict[str, int]:
    _ran("count-ok", fails)
    return {"ok": sum(1 for v in values if v is not None), "total": sum(v or 0 for v in values)}


@task(name="note", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def note(v: int | None, fails: dict[str, int]) -> str:
    _ran("note", fails)
    return f"saw {v}"


def _check(handle: dict[str, Any]) -> Any:
    """The deferred job's 'external work': done after `need` checks."""
    polls = int(handle["polls"]) + 1
    if polls < int(handle["need"]):
        return Deferred({**handle, "polls": polls})
    return int(handle["x"]) * 100 + polls


@task(name="job", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
@deferrable(_check)
def job(x: int, need: int, fails: dict[str, int]) -> Any:
    _ran("job", fails)
    if need == 0:
        return x * 100  # done inline: never parks
    return Deferred({"x": x, "polls": 0, "need": need})


@flow(name="il-branch")
def gate_branch(x: int, fails: dict[str, int]) -> Any:
    b = base(x, fails)
    return branch(
        is_even(b, fails),
        then=lambda: left(b, fails),
        otherwise=lambda: right(left(b, fails), fails),  # two deep: both skipped when not taken
    )


@flow(name="il-switch")
def gate_switch(x: int, fails: dict[str, int]) -> Any:
    b = base(x, fails)
    chosen = switch(
        kind(b, fails),
        {0: lambda: left(b, fails), 1: lambda: right(b, fails)},
        default=lambda: gather([b, b], fails),
    )
    return {"chosen": chosen, "base": b}


@flow(name="il-nested-map")
def nested_map(items: list[int], fails: dict[str, int]) -> int:
    found = listed(items, fails)["items"]
    inner = item.map(found, offset=unmapped(0), fails=unmapped(fails))
    return gather(bump.map(inner, fails=unmapped(fails)), fails)


@flow(name="il-child")
def child(x: int, fails: dict[str, int]) -> int:
    return left(base(x, fails), fails)


@flow(name="il-child-items")
def child_items(items: list[int], fails: dict[str, int]) -> list[int]:
    return listed(items, fails)["items"]


@flow(name="il-subflow")
def with_subflow(x: int, fails: dict[str, int]) -> int:
    return right(child(x, fails), fails)


@flow(name="il-map-subflow")
def map_subflow(items: list[int], fails: dict[str, int]) -> int:
    return gather(child.map(items, fails=unmapped(fails)), fails)


@flow(name="il-map-subflow-result")
def map_subflow_result(items: list[int], fails: dict[str, int]) -> list[int]:
    return item.map(child_items(items, fails), offset=unmapped(1), fails=unmapped(fails))


@flow(name="il-allow-failure")
def allowed_map(items: list[int], fails: dict[str, int]) -> dict[str, int]:
    mapped = item.map(items, offset=unmapped(0), fails=unmapped(fails))
    return count_ok(allow_failure(mapped), fails)


@flow(name="il-allow-return")
def allow_return(x: int, fails: dict[str, int]) -> Any:
    b = base(x, fails)
    return {"note": note(allow_failure(b), fails), "base": b}


@flow(name="il-deferred")
def with_deferred(x: int, need: int, fails: dict[str, int]) -> int:
    return left(job(x, need, fails), fails)


@task(name="job-body", runtime="job", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def job_body(x: int, fails: dict[str, int]) -> int:
    """A `runtime="job"` task: its body runs in a job execution (the harness's step)."""
    _ran("job-body", fails)
    return scaled(x, 1)


@flow(name="il-job")
def with_job(x: int, fails: dict[str, int]) -> int:
    return left(job_body(x, fails), fails)


# --- waits: a sleep, an event (on a source the harness sends to), a person's input ------------

SLEEP_S = 20.0
WAIT_TIMEOUT_S = 60.0
EVENTS = kumoflow_event("il")  # the harness sends {"x": x, "n": n}; a wait takes its run's x


class Form(BaseModel):
    n: int


@task(name="got", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def got(event: dict[str, Any] | None, fails: dict[str, int]) -> int:
    _ran("got", fails)
    return -1 if event is None else int(event["data"]["n"])


@task(name="decided", retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S)
def decided(answer: dict[str, Any], x: int, fails: dict[str, int]) -> int:
    _ran("decided", fails)
    return x * 10 + Form.model_validate(answer).n


@flow(name="il-sleep")
def slept(x: int, fails: dict[str, int]) -> int:
    b = base(x, fails)
    nap = sleep(SLEEP_S, wait_for=[b])
    return left(b, fails, wait_for=[nap])  # type: ignore[call-arg]


@flow(name="il-wait-event")
def waited(x: int, fails: dict[str, int]) -> int:
    event = wait_for_event(
        EVENTS, match={"data": {"x": x}}, timeout=WAIT_TIMEOUT_S, since=Since.RUN_START
    )
    return got(event, fails)


@flow(name="il-wait-event-late")
def waited_late(x: int, fails: dict[str, int]) -> int:
    """As il-wait-event, from when the wait starts: an event that came before must not be
    taken (a duplicate of it sent later included: it is the same, earlier event)."""
    event = wait_for_event(
        EVENTS, match={"data": {"x": x}}, timeout=WAIT_TIMEOUT_S, since=Since.WAIT_START
    )
    return got(event, fails)


@flow(name="il-pause")
def paused(x: int, fails: dict[str, int]) -> int:
    return decided(pause(input=Form, timeout=WAIT_TIMEOUT_S), x, fails)


FLOWS = {
    f.name: f
    for f in (
        chain,
        hooked,
        diamond,
        map_fan_in,
        two_sinks,
        returns_map,
        run_time_map,
        returns_run_time_map,
        gate_branch,
        gate_switch,
        nested_map,
        child,
        child_items,
        with_subflow,
        map_subflow,
        map_subflow_result,
        allowed_map,
        allow_return,
        with_deferred,
        limited_map,
        keyed_map,
        one_at_a_time,
        rated_map,
        with_job,
        slept,
        waited,
        waited_late,
        paused,
    )
}


def names(flow_name: str, params: dict[str, Any]) -> list[str]:
    """The failure names (`fails` keys) of the tasks a run of `flow_name` may run."""
    given = params.get("items", [])
    items = [f"item:{x}" for x in given]
    return {
        "il-chain": ["base", "left", "right"],
        "il-hooked": ["base", "left", "right"],
        "il-diamond": ["base", "left", "right", "gather"],
        "il-map-fan-in": ["base", *items, "gather"],
        "il-two-sinks": ["base", "left", "right", *items],
        "il-returns-map": items,
        "il-run-time-map": ["base", "listed", *items, "gather"],
        "il-returns-run-time-map": ["listed", *items],
        "il-branch": ["base", "is-even", "left", "right"],
        "il-switch": ["base", "kind", "left", "right", "gather"],
        "il-nested-map": ["listed", *items, *(f"bump:{scaled(x, 0)}" for x in given), "gather"],
        "il-child": ["base", "left"],
        "il-child-items": ["listed"],
        "il-subflow": ["base", "left", "right"],
        "il-map-subflow": [*(["base", "left"] if given else []), "gather"],
        "il-map-subflow-result": ["listed", *items],
        "il-allow-failure": [*items, "count-ok"],
        "il-allow-return": ["base", "note"],
        "il-deferred": ["job", "left"],
        "il-limited-map": ["base", "left", *items],
        "il-keyed-map": ["base", "left", *items],
        "il-one-at-a-time": ["base", "left", "right"],
        "il-rated-map": ["base", "left", *items],
        "il-job": ["job-body", "left"],
        "il-sleep": ["base", "left"],
        "il-wait-event": ["got"],
        "il-wait-event-late": ["got"],
        "il-pause": ["decided"],
    }[flow_name]


def expected(flow_name: str, params: dict[str, Any], seed: Any = None) -> tuple[bool, Any]:
    """(succeeds, result), worked out by hand: a run fails when a task it needs fails more
    than it may retry (a task behind `allow_failure` excepted, whose consumer reads None).
    `seed`: what a wait was given (the event's data, the pause's input), None: nothing."""
    fails: dict[str, int] = params["fails"]

    def lost(*which: str) -> bool:
        return any(fails.get(n, 0) > RETRIES for n in which)

    x, items = params.get("x", 0), params.get("items", [])
    b = plus_one(x)
    item_names = [f"item:{i}" for i in items]
    match flow_name:
        case "il-branch":
            taken = ["left"] if b % 2 == 0 else ["left", "right"]
            if lost("base", "is-even", *taken):
                return False, None
            return True, doubled(b) if b % 2 == 0 else plus_ten(doubled(b))
        case "il-switch":
            k = b % 3
            chosen_task = {0: "left", 1: "right"}.get(k, "gather")
            if lost("base", "kind", chosen_task):
                return False, None
            chosen = {0: doubled(b), 1: plus_ten(b)}.get(k, b + b)
            return True, {"chosen": chosen, "base": b}
        case "il-nested-map":
            bumps = [f"bump:{scaled(i, 0)}" for i in items]
            if lost("listed", *item_names, *bumps, "gather"):
                return False, None
            return True, sum(scaled(i, 0) + 1 for i in items)
        case "il-subflow":
            return (False, None) if lost("base", "left", "right") else (True, plus_ten(doubled(b)))
        case "il-map-subflow":
            if lost("gather") or (items and lost("base", "left")):
                return False, None
            return True, sum(doubled(plus_one(i)) for i in items)
        case "il-map-subflow-result":
            if lost("listed", *item_names):
                return False, None
            return True, [scaled(i, 1) for i in items]
        case "il-allow-failure":
            if lost("count-ok"):
                return False, None
            ok = [scaled(i, 0) for i in items if not lost(f"item:{i}")]
            return True, {"ok": len(ok), "total": sum(ok)}
        case "il-allow-return":
            # `note` runs past a failed `base`, but the run returns `base`'s result itself.
            if lost("base", "note"):
                return False, None
            return True, {"note": f"saw {b}", "base": b}
        case "il-deferred":
            if lost("job", "left"):
                return False, None
            need = params["need"]
            return True, doubled(x * 100 + need)
        case "il-sleep":
            return (False, None) if lost("base", "left") else (True, doubled(b))
        case "il-wait-event" | "il-wait-event-late":
            return (False, None) if lost("got") else (True, -1 if seed is None else seed["n"])
        case "il-pause":
            if seed is None or lost("decided"):  # no input: the pause times out
                return False, None
            return True, x * 10 + seed["n"]
    if lost(*names(flow_name, params)):
        return False, None
    table: dict[str, Callable[[], Any]] = {
        "il-chain": lambda: plus_ten(doubled(b)),
        "il-one-at-a-time": lambda: plus_ten(doubled(b)),
        "il-job": lambda: doubled(scaled(x, 1)),
        "il-hooked": lambda: plus_ten(doubled(b)),
        "il-diamond": lambda: doubled(b) + plus_ten(b),
        "il-map-fan-in": lambda: sum(scaled(i, b) for i in items),
        "il-two-sinks": lambda: {
            "left": doubled(b),
            "right": plus_ten(b),
            "items": [scaled(i, b) for i in items],
        },
        "il-returns-map": lambda: [scaled(i, 0) for i in items],
        "il-limited-map": lambda: {"left": doubled(b), "items": [scaled(i, b) for i in items]},
        "il-keyed-map": lambda: {"left": doubled(b), "items": [scaled(i, b) for i in items]},
        "il-rated-map": lambda: {"left": doubled(x), "items": [scaled(i, b) for i in items]},
        "il-run-time-map": lambda: sum(scaled(i, b) for i in items),
        "il-returns-run-time-map": lambda: [scaled(i, 0) for i in items],
    }
    return True, table[flow_name]()
