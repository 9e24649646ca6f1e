"""Rules the suite ran past without pinning: a flow retry's fan-in waits only for what runs
again; a failure one child allows but another does not still fails the run; a resume names
the flow attempt it resumes, so a stale or repeated one does nothing."""

from __future__ import annotations

from orchestrator import allow_failure, flow, task
from orchestrator.adapters import VirtualClock
from orchestrator.contracts import Run, RunRequested, RunStatus, TaskStatus
from orchestrator.engine import CancelRun, ResumeRun
from orchestrator.runtime import advance, memory_runtime, read_flow_result, start_run, tick
from orchestrator.sdk import Flow
from tests.runtime.pool import Driver, PoolBus

BROKEN: set[str] = set()


@task(name="steady")
def steady(x: int) -> int:
    return x + 1


@task(name="once-broken")
def once_broken(x: int) -> int:
    if "once-broken" in BROKEN:
        BROKEN.discard("once-broken")  # the next flow attempt finds it repaired
        raise RuntimeError("broken on the first flow attempt")
    return x * 10


@task(name="join")
def join(a: int, b: int) -> int:
    return a + b


@flow(name="retried-fan-in", retries=1)
def retried_fan_in(x: int) -> int:
    return join(steady(x), once_broken(x))


@task(name="breaks")
def breaks(x: int) -> int:
    raise RuntimeError(f"breaks on {x}")


@task(name="tolerant")
def tolerant(v: int | None) -> str:
    return f"saw {v}"


@task(name="strict")
def strict(v: int) -> int:
    return v


@flow(name="one-allows")
def one_allows(x: int) -> str:
    broken = breaks(x)
    strict(broken)
    return tolerant(allow_failure(broken))


def _driver(f: Flow[..., object], params: dict[str, object]) -> Driver:
    bus = PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=f.functions(), bus=bus)
    rt.flows.put_flow(f.spec)
    start_run(rt, RunRequested(flow=f.spec.name, params=params), run_id="r")
    return Driver(rt, bus)


def _run(d: Driver) -> Run:
    snap = d.rt.state.load("r")
    assert snap is not None
    return snap.run


def test_a_flow_retry_decides_a_fan_in_once_only_its_failed_parent_ran_again() -> None:
    BROKEN.add("once-broken")
    d = _driver(retried_fan_in, {"x": 2})
    d.drain()  # no sweep: the retry's own events finish it
    run = _run(d)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.attempt == 2
    assert read_flow_result(d.rt, d.rt.plan_of(run), run) == 3 + 20
    fanin = d.rt.state.counters("r", ["fanin.2.join"])["fanin.2.join"]
    assert (fanin["need"], fanin["done"]) == (1, 1)  # steady kept its result: not waited for


def test_a_failure_allowed_by_one_child_but_not_another_fails_the_run() -> None:
    d = _driver(one_allows, {"x": 1})
    d.settle()
    snap = d.rt.state.load("r")
    assert snap is not None
    assert snap.tasks["tolerant"].status is TaskStatus.SUCCEEDED
    assert snap.tasks["strict"].status is TaskStatus.SKIPPED
    assert snap.run.status is RunStatus.FAILED
    assert snap.run.error is not None
    assert snap.run.error.message == "breaks on 1"


def test_a_resume_naming_an_earlier_flow_attempt_does_nothing() -> None:
    BROKEN.add("once-broken")
    d = _driver(retried_fan_in, {"x": 2})
    advance(d.rt, "r", CancelRun("stop"))
    assert _run(d).status is RunStatus.CANCELLED
    assert advance(d.rt, "r", ResumeRun(attempt=1))  # resumes attempt 1 as attempt 2
    assert _run(d).attempt == 2
    advance(d.rt, "r", CancelRun("stop again"))
    ended = _run(d)
    assert (ended.status, ended.attempt) == (RunStatus.CANCELLED, 2)
    # The first resume delivered again: it names attempt 1, which is over.
    assert not advance(d.rt, "r", ResumeRun(attempt=1))
    again = _run(d)
    assert (again.status, again.attempt) == (RunStatus.CANCELLED, 2)


@task(name="never-reported")
def never_reported(x: int) -> int:
    return x


@flow(name="times-out", timeout_seconds=30)
def times_out(x: int) -> int:
    return never_reported(x)


def test_a_run_times_out_at_its_timeout_instant() -> None:
    """The sweep that fires the timeout timer at exactly the run's timeout ends the run then,
    not at the next hourly check."""
    d = _driver(times_out, {"x": 1})
    d.bus.pool.clear()  # the task's request is lost: nothing will end the run but its timeout
    d.rt.clock.sleep(30)
    tick(d.rt, budget_s=30)
    run = _run(d)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.type == "TimeoutError"
