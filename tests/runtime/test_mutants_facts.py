"""Facts about attempts the suite did not pin: a NotFoundError from kumoflow's own services
(an object not there yet) is retried like any transient infrastructure error, and two run-time
maps over the same list of one result share one items object."""

from __future__ import annotations

from orchestrator import flow, task
from orchestrator.adapters import MemoryBlobStore, VirtualClock
from orchestrator.contracts import RunRequested, RunStatus
from orchestrator.errors import NotFoundError
from orchestrator.runtime import memory_runtime, read_flow_result, start_run
from orchestrator.sdk import Flow
from tests.runtime.pool import Driver, PoolBus

SEEN: list[str] = []


@task(name="waits-for-object", retries=1, retry_delay_seconds=5)
def waits_for_object(name: str) -> str:
    SEEN.append(name)
    if len(SEEN) == 1:
        raise NotFoundError(f"gs://inbox/{name} is not there yet")
    return name.upper()


@flow(name="reads-an-object")
def reads_an_object(name: str) -> str:
    return waits_for_object(name)


@task(name="listing")
def listing(n: int) -> list[int]:
    return list(range(n))


@task(name="double")
def double(x: int) -> int:
    return 2 * x


@task(name="triple")
def triple(x: int) -> int:
    return 3 * x


@flow(name="two-maps-one-list")
def two_maps_one_list(n: int) -> dict[str, list[int]]:
    xs = listing(n)
    return {"double": double.map(xs), "triple": triple.map(xs)}


class CountingPuts(MemoryBlobStore):
    def __init__(self) -> None:
        super().__init__()
        self.puts: list[str] = []

    def put(self, uri: str, data: bytes, content_type: str, *, overwrite: bool = False) -> None:
        self.puts.append(uri)
        super().put(uri, data, content_type, overwrite=overwrite)


def _settled(
    f: Flow[..., object], params: dict[str, object], blobs: MemoryBlobStore | None = None
) -> Driver:
    bus = PoolBus()
    rt = memory_runtime(clock=VirtualClock(), functions=f.functions(), bus=bus, blobs=blobs)
    rt.flows.put_flow(f.spec)
    start_run(rt, RunRequested(flow=f.spec.name, params=params), run_id="r")
    d = Driver(rt, bus)
    d.settle(rounds=2)
    return d


def test_a_not_found_from_kumoflows_services_is_retried() -> None:
    SEEN.clear()
    d = _settled(reads_an_object, {"name": "a.csv"})
    snap = d.rt.state.load("r")
    assert snap is not None
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    assert read_flow_result(d.rt, d.rt.plan_of(snap.run), snap.run) == "A.CSV"
    assert SEEN == ["a.csv", "a.csv"]
    first = snap.tasks["waits-for-object"].attempts[0]
    assert first.error is not None
    assert first.error.type == "orchestrator.errors.NotFoundError"


def test_two_maps_over_the_same_list_share_its_items_and_both_run() -> None:
    blobs = CountingPuts()
    d = _settled(two_maps_one_list, {"n": 4}, blobs)
    snap = d.rt.state.load("r")
    assert snap is not None
    assert d.dead == []
    assert snap.run.status is RunStatus.SUCCEEDED, snap.run.error
    value = read_flow_result(d.rt, d.rt.plan_of(snap.run), snap.run)
    assert value == {"double": [0, 2, 4, 6], "triple": [0, 3, 6, 9]}
    # One list, one items object, uploaded once (each upload is a Class A operation).
    assert len([u for u in blobs.puts if "/items/listing/" in u]) == 1
