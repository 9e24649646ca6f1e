"""A completion of a task whose result run-time maps read must say how long those lists are
(the maps are sized from it, never from reading the result): one that does not is refused,
recorded, and changes nothing, even with the right token and location."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator import flow, task
from orchestrator.adapters import VirtualClock
from orchestrator.contracts import RunRequested, TaskStatus, TaskSucceeded
from orchestrator.engine import claim, claimable
from orchestrator.errors import BadInputError
from orchestrator.ports import Commit
from orchestrator.runtime import LEASE_S, advance, memory_runtime, start_run

T = datetime(2026, 1, 1, tzinfo=UTC)


@task(name="listing")
def listing(n: int) -> list[int]:
    return list(range(n))


@task(name="double")
def double(x: int) -> int:
    return 2 * x


@flow(name="mapped-listing")
def mapped_listing(n: int) -> list[int]:
    return double.map(listing(n))


def test_a_completion_without_the_lengths_its_maps_need_is_refused() -> None:
    rt = memory_runtime(clock=VirtualClock(), functions=mapped_listing.functions())
    rt.flows.put_flow(mapped_listing.spec)
    start_run(rt, RunRequested(flow="mapped-listing", params={"n": 3}), run_id="r")
    snap = rt.state.load("r", ["listing"])
    assert snap is not None
    plan = rt.plan_of(snap.run)
    record = claimable(snap.run, plan, "listing", snap.tasks.get("listing"), 1, T)
    assert record is not None
    taken = claim(record, 1, "tok", "w", T, LEASE_S)
    assert taken is not None
    rt.state.commit(Commit(run_id="r", tasks=[(taken, snap.etags.get("listing"))]))
    uri = rt.task_result_uri(plan, "r", "listing")
    rt.blobs.put(uri, b"[0, 1, 2]", "application/json")

    def done(lengths: dict[str, int]) -> TaskSucceeded:
        return TaskSucceeded(
            run_id="r", key="listing", attempt=1, token="tok", result_uri=uri,
            worker="w", started_at=T, ended_at=T, lengths=lengths,
        )  # fmt: skip

    with pytest.raises(BadInputError, match="lacks the lengths of double"):
        advance(rt, "r", done({}))
    after = rt.state.load("r", ["listing", "double"])
    assert after is not None
    assert after.tasks["listing"].status is TaskStatus.RUNNING
    assert "double" not in after.tasks
    assert advance(rt, "r", done({"double": 3}))  # the same completion, with them: applied
    final = rt.state.load("r", ["listing"])
    assert final is not None
    assert final.tasks["listing"].status is TaskStatus.SUCCEEDED
