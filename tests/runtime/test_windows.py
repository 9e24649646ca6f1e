"""Trigger filters and windows (debounce=, batch=) over the in-memory adapters.

The unit tests pin the filters (prefix, suffix, glob, attributes, body match as data) and the
windows' shape (a batch of N, a debounce's last event, a late event moved on). The state
machine at the end runs admission and the sweeper's close on several instances interleaved
one store call at a time (tests/runtime/cluster.py's Gate), with duplicate and late
deliveries, kills before any store call and at the after-commit fault point, and checks that
every event lands in exactly one closed window, that no window takes more than a batch, and
that every window with events closes and starts its run.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pydantic import ValidationError

from orchestrator import FlowDefinitionError, GcsObject, flow, functions, on_gcs_finalize, on_pubsub
from orchestrator.adapters import PUBSUB_PUBLISHED, MemoryBlobStore, MemoryStore, VirtualClock
from orchestrator.contracts import (
    GcsTrigger,
    Match,
    OutboxKind,
    PubSubTrigger,
    Run,
    RunStatus,
    TriggerKind,
)
from orchestrator.functions import main
from orchestrator.runtime import (
    Deployed,
    Runtime,
    Windowed,
    admit,
    memory_runtime,
    message,
    requests_for_message,
    requests_for_object,
    tick,
)
from orchestrator.runtime.control import close_window
from tests.flows import windowed
from tests.runtime.cluster import Crash, Gate, SteppedStore

# --- filters ------------------------------------------------------------------------------


def _obj(name: str, generation: int = 1, bucket: str = "win-bucket") -> GcsObject:
    return GcsObject(bucket=bucket, name=name, generation=generation)


def _deployed(store: MemoryStore) -> list[Deployed]:
    return [Deployed(store.put_flow(f.spec, deploy=True), f.spec) for f in windowed.FLOWS]


def test_gcs_filters_keep_prefix_suffix_and_glob_and_log_what_they_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployed = _deployed(MemoryStore())
    kept = requests_for_object(deployed, _obj("in/a.csv"), "e1")
    assert [w.flow for w in kept] == ["win-batch"]
    assert requests_for_object(deployed, _obj("db/x"), "e2")[0].flow == "win-debounce"
    caplog.set_level("INFO", logger="kumoflow")
    assert requests_for_object(deployed, _obj("in/a.json"), "e3") == []
    reasons = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any("win-batch" in r and "glob 'in/*.csv'" in r for r in reasons), reasons
    assert any("win-debounce" in r and "prefix 'db/'" in r for r in reasons), reasons


def _msg(attributes: dict[str, str], data: str, mid: str = "m1") -> Any:
    return message("win-topic", data.encode(), attributes, mid, "2026-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("attributes", "data", "why"),
    [
        ({"kind": "order"}, '{"order": {"region": "eu"}}', None),
        ({"kind": "order", "extra": "1"}, '{"order": {"region": "us"}}', None),
        ({"kind": "refund"}, '{"order": {"region": "eu"}}', "attribute 'kind' is 'refund'"),
        ({}, '{"order": {"region": "eu"}}', "attribute 'kind' is None"),
        ({"kind": "order"}, '{"order": {"region": "asia"}}', "body at 'order.region'"),
        ({"kind": "order"}, '{"order": {}}', "body at 'order.region'"),
        ({"kind": "order"}, "not json", "the body is not JSON"),
    ],
)
def test_pubsub_filters_on_attributes_and_body(
    attributes: dict[str, str], data: str, why: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="kumoflow")
    out = requests_for_message(_deployed(MemoryStore()), _msg(attributes, data))
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    if why is None:
        assert [type(w) for w in out] == [Windowed]
        assert dropped == []
    else:
        assert out == []
        assert len(dropped) == 1
        assert why in dropped[0], dropped


def test_body_match_ops_and_paths() -> None:
    def keeps(m: dict[str, Any], body: str) -> bool:
        t = PubSubTrigger(topic="win-topic", match=(Match.model_validate(m),))
        out = requests_for_message([Deployed("0123abcd", _plain_spec(t))], _msg({}, body))
        return bool(out)

    assert keeps({"path": "a.b", "value": 1}, '{"a": {"b": 1}}')
    assert not keeps({"path": "a.b", "value": 1}, '{"a": {"b": "1"}}')
    assert keeps(
        {"path": "items.1.sku", "op": "prefix", "value": "X-"}, '{"items": [{}, {"sku": "X-9"}]}'
    )
    assert not keeps({"path": "items.2.sku", "op": "prefix", "value": "X-"}, '{"items": []}')
    assert not keeps({"path": "n", "op": "prefix", "value": "1"}, '{"n": 12}')
    assert keeps({"path": "n", "op": "in", "value": [1, 2]}, '{"n": 2}')


def _plain_spec(t: PubSubTrigger) -> Any:
    @flow(name="plain-match")
    def plain(payload: str = "") -> str:
        return payload

    return plain.spec.model_copy(update={"triggers": (t,)})


@pytest.mark.parametrize(
    "bad",
    [
        {"path": "a", "op": "prefix", "value": 3},
        {"path": "a", "op": "in", "value": "x"},
        {"path": "a", "op": "regex", "value": "x"},
        {"path": "", "value": 1},
        {"path": "a..b", "value": 1},
    ],
)
def test_match_specs_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Match.model_validate(bad)


def _compile(triggers: list[Any], annotation: str) -> Any:
    def body(obj: Any) -> None: ...

    body.__annotations__["obj"] = annotation
    return flow(name="declared", triggers=triggers)(body).spec


def test_trigger_declarations_are_checked() -> None:
    both = [on_gcs_finalize(bucket="b", debounce=1, batch=(2, 3))]
    with pytest.raises(FlowDefinitionError, match="not both"):
        _compile(both, "list[GcsObject]")
    with pytest.raises(FlowDefinitionError, match="list"):
        _compile([on_gcs_finalize(bucket="b", batch=(2, 3))], "GcsObject")
    bad = [on_pubsub("t", match=[{"path": "a", "op": "in", "value": 1}])]
    with pytest.raises(FlowDefinitionError, match="match"):
        _compile(bad, "int")
    assert _compile([on_gcs_finalize(bucket="b", batch=(2, 3))], "list[GcsObject]").triggers
    with pytest.raises(ValidationError):
        GcsTrigger(bucket="b", param="p", batch={"size": 0, "seconds": 1})  # type: ignore[arg-type]


# --- windows --------------------------------------------------------------------------------


def _runtime(store: MemoryStore | None = None, **kw: Any) -> Runtime:
    store = store or MemoryStore()
    rt = memory_runtime(clock=VirtualClock(), store=store, **kw)
    for f in windowed.FLOWS:
        store.put_flow(f.spec, deploy=True)
    return rt


def _windowed(rt: Runtime, name: str, generation: int = 1) -> Windowed:
    deployed = [
        Deployed(v, rt.spec(v))
        for v in (rt.flows.latest_version(f.spec.name) for f in windowed.FLOWS)
        if v
    ]
    (w,) = requests_for_object(deployed, _obj(name, generation), f"ev-{name}-{generation}")
    assert isinstance(w, Windowed)
    return w


def _sweep(rt: Runtime) -> None:
    """Fire what is due, as the sweeper does, until nothing more is."""
    for _ in range(20):
        if not tick(rt):
            return
    raise AssertionError("the sweeper keeps finding work")


def _windows(rt: Runtime, flow_name: str) -> list[Run]:
    return sorted(
        (r for r in rt.state.list_runs(flow_name, limit=1000)),
        key=lambda r: int(str(r.trigger.detail["window"])),
    )


def _names(run: Run, param: str) -> list[str]:
    value = run.params[param]
    items = value if isinstance(value, list) else [value]
    return [str(o["name"]) for o in items if isinstance(o, dict)]


def test_a_burst_is_batched_by_size_then_by_time() -> None:
    rt = _runtime()
    for i in range(7):
        admit(rt, _windowed(rt, f"in/{i}.csv"))
        rt.clock.sleep(0.01)  # a batch lists its events in the order they were recorded
    admit(rt, _windowed(rt, "in/3.csv"))  # a duplicate delivery
    # Any instance may plan an open window (`runs show`, the dashboard): its plan is cached.
    assert [list(rt.plan_of(r).tasks) for r in _windows(rt, "win-batch")] == [["name-of[0]"]] * 3
    _sweep(rt)  # the full windows close at once; the last waits for its time
    runs = _windows(rt, "win-batch")
    assert list(rt.plan_of(runs[0]).tasks) == [f"name-of[{i}]" for i in range(3)]
    assert [(r.status, _names(r, "objs")) for r in runs[:2]] == [
        (RunStatus.RUNNING, ["in/0.csv", "in/1.csv", "in/2.csv"]),
        (RunStatus.RUNNING, ["in/3.csv", "in/4.csv", "in/5.csv"]),
    ]
    assert runs[2].status is RunStatus.PENDING
    assert "events" not in runs[2].trigger.detail  # open
    rt.clock.sleep(windowed.BATCH_SECONDS)
    _sweep(rt)
    last = _windows(rt, "win-batch")[2]
    assert (last.status, _names(last, "objs")) == (RunStatus.RUNNING, ["in/6.csv"])
    assert last.trigger.kind is TriggerKind.GCS
    assert last.trigger.detail["batch"] == {
        "size": 3,
        "seconds": 10.0,
    }


def test_debounce_starts_one_run_for_the_last_event_of_a_quiet_spell() -> None:
    rt = _runtime()
    for i in range(4):
        admit(rt, _windowed(rt, f"db/{i}"))
        rt.clock.sleep(windowed.DEBOUNCE_SECONDS - 1)  # never quiet for long enough
        _sweep(rt)
    assert [r.status for r in _windows(rt, "win-debounce")] == [RunStatus.PENDING]
    rt.clock.sleep(1)
    _sweep(rt)
    (run,) = _windows(rt, "win-debounce")
    assert run.status is RunStatus.RUNNING
    assert _names(run, "obj") == ["db/3"]
    assert run.trigger.detail["events"] == [_windowed(rt, f"db/{i}").req.run_id for i in range(4)]
    # A late duplicate of an event it took starts nothing; a new event opens the next window.
    admit(rt, _windowed(rt, "db/1"))
    admit(rt, _windowed(rt, "db/4"))
    rt.clock.sleep(windowed.DEBOUNCE_SECONDS)
    _sweep(rt)
    assert [_names(r, "obj") for r in _windows(rt, "win-debounce")] == [["db/3"], ["db/4"]]


def _stepped(
    store: MemoryStore, blobs: MemoryBlobStore, clock: VirtualClock, name: str
) -> tuple[Runtime, Gate]:
    gate = Gate(name)
    rt = replace(_runtime(store, blobs=blobs), clock=clock)
    return replace(rt, state=SteppedStore(store, gate)), gate  # type: ignore[arg-type]


def _finish(gate: Gate) -> Any:
    while not gate.done:
        gate.step()
    ok, value = gate.collect()
    assert ok, value
    return value


def test_an_event_the_close_did_not_choose_is_moved_on_by_the_close() -> None:
    """The race the close's re-read covers: an event commits into the window after the close
    read its events and before the close commits its choice; the event saw the window open
    and was acknowledged, so only the close can move it on."""
    store, blobs, clock = MemoryStore(), MemoryBlobStore(), VirtualClock()
    rt = replace(_runtime(store, blobs=blobs), clock=clock)
    admit(rt, _windowed(rt, "db/a"))
    clock.sleep(windowed.DEBOUNCE_SECONDS)
    (timer,) = [e for e in rt.timers.due(clock.now()) if e.kind is OutboxKind.WINDOW]
    closer_rt, closer = _stepped(store, blobs, clock, "closer")
    closer.start(functools.partial(close_window, closer_rt, timer))
    while closer.next_call != "commit":
        closer.step()  # it read the window's events (db/a) and waits to commit its choice
    late_rt, late = _stepped(store, blobs, clock, "late")
    late.start(functools.partial(admit, late_rt, _windowed(rt, "db/b")))
    assert _finish(late) == timer.run_id  # it joined the open window 0
    _finish(closer)
    first, second = _windows(rt, "win-debounce")
    assert first.trigger.detail["events"] == [_windowed(rt, "db/a").req.run_id]
    assert second.status is RunStatus.PENDING  # db/b moved on by the close's re-read
    clock.sleep(windowed.DEBOUNCE_SECONDS)
    _sweep(rt)
    assert [_names(r, "obj") for r in _windows(rt, "win-debounce")] == [["db/a"], ["db/b"]]


def test_an_event_that_finds_its_window_closed_moves_itself_on() -> None:
    store, blobs, clock = MemoryStore(), MemoryBlobStore(), VirtualClock()
    rt = replace(_runtime(store, blobs=blobs), clock=clock)
    admit(rt, _windowed(rt, "db/a"))
    clock.sleep(windowed.DEBOUNCE_SECONDS)
    late_rt, late = _stepped(store, blobs, clock, "late")
    late.start(functools.partial(admit, late_rt, _windowed(rt, "db/b")))
    while late.next_call != "commit":
        late.step()  # it found window 0 open and waits to commit into it
    (timer,) = [e for e in rt.timers.due(clock.now()) if e.kind is OutboxKind.WINDOW]
    close_window(rt, timer)  # closes, re-reads (db/b is not in yet) and retires its timer
    wid = _finish(late)
    first, second = _windows(rt, "win-debounce")
    assert wid == second.run_id
    assert first.trigger.detail["events"] == [_windowed(rt, "db/a").req.run_id]
    clock.sleep(windowed.DEBOUNCE_SECONDS)
    _sweep(rt)
    assert [_names(r, "obj") for r in _windows(rt, "win-debounce")] == [["db/a"], ["db/b"]]


# --- interleavings ----------------------------------------------------------------------------

BATCHED = tuple(f"in/{i}.csv" for i in range(5))
DEBOUNCED = tuple(f"db/{i}" for i in range(4))
K = 2  # run-starter / sweeper instances


class WindowMachine(RuleBasedStateMachine):
    """Admissions and closes on K instances, one store call at a time, with duplicate and late
    deliveries, kills before any store call or at the after-commit fault point, and time."""

    def __init__(self) -> None:
        super().__init__()
        self.store, self.blobs, self.clock = MemoryStore(), MemoryBlobStore(), VirtualClock()
        self.plain = replace(_runtime(self.store, blobs=self.blobs), clock=self.clock)
        self.events = {n: _windowed(self.plain, n) for n in (*BATCHED, *DEBOUNCED)}
        self.gates: list[Gate] = []
        self.rts: list[Runtime] = []
        self.armed = [False] * K
        self.handling: list[str | None] = [None] * K  # the event an instance is admitting
        self.delivered: set[str] = set()
        self.acked: set[str] = set()
        self.chosen: dict[str, list[str]] = {}  # a closed window's choice, as first seen
        self.log: list[str] = []
        for i in range(K):
            rt, gate = _stepped(self.store, self.blobs, self.clock, f"i{i}")
            self.rts.append(replace(rt, fault=functools.partial(self._fault, i)))
            self.gates.append(gate)

    def _fault(self, index: int, point: str) -> None:
        if self.armed[index]:
            self.armed[index] = False
            raise Crash(f"instance {index} died at {point}")

    def _settle(self, i: int) -> None:
        gate = self.gates[i]
        if not gate.done:
            return
        ok, value = gate.collect()
        if not ok and not isinstance(value, Crash):
            raise value
        if ok and self.handling[i] is not None:
            self.acked.add(str(self.handling[i]))
        self.handling[i] = None

    @rule(name=st.sampled_from((*BATCHED, *DEBOUNCED)), i=st.integers(0, K - 1))
    def redeliver(self, name: str, i: int) -> None:
        """A delivery of `name`: its first, a duplicate, or a late one after its ack."""
        self._deliver(name, i)

    @rule(batched=st.booleans(), i=st.integers(0, K - 1))
    def deliver(self, batched: bool, i: int) -> None:
        """The next event of a lane that was never delivered (a burst goes on)."""
        lane = BATCHED if batched else DEBOUNCED
        fresh = [n for n in lane if n not in self.delivered]
        self._deliver(fresh[0] if fresh else lane[-1], i)

    def _deliver(self, name: str, i: int) -> None:
        """On instance i, or another when i is busy."""
        i = next((j for j in (i, *range(K)) if not self.gates[j].busy), -1)
        if i < 0:
            return
        self.delivered.add(name)
        self.handling[i] = name
        self.log.append(f"i{i} admits {name}")
        self.gates[i].start(functools.partial(admit, self.rts[i], self.events[name]))
        self._settle(i)

    @rule(i=st.integers(0, K - 1))
    def sweep(self, i: int) -> None:
        """The sweeper's tick on instance i: every due window timer, closed in turn."""
        i = next((j for j in (i, *range(K)) if not self.gates[j].busy), -1)
        if i < 0:
            return
        rt = self.rts[i]

        def fire() -> None:
            for item in rt.timers.due(rt.clock.now()):
                if item.kind is OutboxKind.WINDOW:
                    close_window(rt, item)

        self.log.append(f"i{i} sweeps at {self.clock.now():%H:%M:%S}")
        self.gates[i].start(fire)
        self._settle(i)

    @rule(i=st.integers(0, K - 1), n=st.integers(1, 12))
    def step(self, i: int, n: int) -> None:
        for _ in range(n):
            if self.gates[i].busy:
                self.gates[i].step()
                self._settle(i)

    @precondition(lambda self: any(g.busy for g in self.gates))
    @rule(i=st.integers(0, K - 1))
    def kill(self, i: int) -> None:
        if self.gates[i].busy:
            self.gates[i].kill()
            self._settle(i)

    @rule(i=st.integers(0, K - 1))
    def crash_after_next_commit(self, i: int) -> None:
        self.armed[i] = True

    @rule(seconds=st.sampled_from((0.5, 2.0, windowed.DEBOUNCE_SECONDS, windowed.BATCH_SECONDS)))
    def wait(self, seconds: float) -> None:
        self.clock.sleep(seconds)

    def _windows(self) -> list[Run]:
        return [r for f in ("win-batch", "win-debounce") for r in _windows(self.plain, f)]

    @invariant()
    def choices_are_final_and_disjoint(self) -> None:
        seen: Counter[str] = Counter()
        for run in self._windows():
            events = run.trigger.detail.get("events")
            if not isinstance(events, list):
                continue
            chosen = [str(e) for e in events]
            assert self.chosen.setdefault(run.run_id, chosen) == chosen, run.run_id
            if run.flow == "win-batch":
                assert 1 <= len(chosen) <= windowed.BATCH_SIZE, chosen
            seen.update(chosen)
        assert [k for k, n in seen.items() if n > 1] == []

    def teardown(self) -> None:
        for i, gate in enumerate(self.gates):
            while gate.busy:
                gate.step()
                self._settle(i)
        # Pub/Sub redelivers what was not acknowledged; the sweeper then fires all that is due.
        for name in sorted(self.delivered - self.acked):
            admit(self.plain, self.events[name])
        for _ in range(3):
            self.clock.sleep(windowed.BATCH_SECONDS + windowed.DEBOUNCE_SECONDS)
            _sweep(self.plain)
        self.choices_are_final_and_disjoint()
        where = {e: r for r in self._windows() for e in self.chosen.get(r.run_id, [])}
        keys = {self.events[n].req.run_id: n for n in self.delivered}
        assert sorted(keys[e] for e in where) == sorted(self.delivered)  # none lost
        for flow_name in ("win-batch", "win-debounce"):
            runs = _windows(self.plain, flow_name)
            assert [int(str(r.trigger.detail["window"])) for r in runs] == list(range(len(runs)))
            for run in runs:  # every window closed and started its run, exactly once
                assert run.run_id in self.chosen, (flow_name, run.trigger.detail)
                assert run.status is RunStatus.RUNNING, run.status
                if flow_name == "win-debounce":
                    assert _names(run, "obj") == [keys[self.chosen[run.run_id][-1]]]
                else:
                    assert _names(run, "objs") == [keys[e] for e in self.chosen[run.run_id]]
        for gate in self.gates:
            gate.abandon()


def test_windows_interleaved() -> None:
    run_state_machine_as_test(
        WindowMachine,
        settings=settings(
            max_examples=int(os.environ.get("KUMOFLOW_WINDOW_EXAMPLES", "60")),
            stateful_step_count=60,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_the_run_starter_refuses_bad_params_before_a_window_and_takes_good_ones() -> None:
    """Through the deployed function: a message whose params the flow refuses is a dead
    letter and joins no window; a good one joins, and the sweeper starts its run."""
    store = MemoryStore()
    rt = _runtime(store)
    functions.use_runtime(rt)

    def publish(data: dict[str, Any], mid: str) -> None:
        body = {
            "message": {
                "data": base64.b64encode(json.dumps(data).encode()).decode(),
                "messageId": mid,
            }
        }
        attributes = {
            "type": PUBSUB_PUBLISHED,
            "source": "//pubsub.googleapis.com/projects/p/topics/win-params",
            "id": mid,
        }
        main.run_starter(CloudEvent(attributes, body))

    publish({"count": "many"}, "m-bad")
    (letter,) = store.list()
    assert letter.flow == "win-params"
    assert "count" in letter.reason
    assert store.list_runs("win-params") == []
    publish({"count": 2}, "m-1")
    publish({"count": 3}, "m-2")
    publish({"count": 3}, "m-2")  # redelivered
    rt.clock.sleep(windowed.DEBOUNCE_SECONDS)
    _sweep(rt)
    (run,) = store.list_runs("win-params")
    assert run.status is RunStatus.RUNNING
    assert run.params == {"count": 3}
    assert len(store.list()) == 1
