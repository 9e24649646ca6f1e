"""One deterministic scenario per finding of issue F13's interleaving machine, each on the
machine's own harness (tests/runtime/cluster.py) with one instance, or two where a race needs
them, and the machine's end checks (`Cluster.problems`: every run ended once, announced under
an id of its own per flow attempt, with what the flow gives in-process, nothing left unfinished,
no timer lost, no dead letter).

Each failed before its fix (see the history of this file: they landed as strict xfails).
"""

from __future__ import annotations

from typing import Any

from orchestrator.contracts import RunStatus
from tests.runtime.cluster import BIG_JUMP_S, Cluster, Message


def _cluster(flow: str, params: dict[str, Any], k: int = 1) -> Cluster:
    c = Cluster(k)
    c.request_run("r", flow, params)
    return c


def _handle(c: Cluster, msg: Message, index: int = 0) -> None:
    c.deliver(index, msg)
    c.finish(index)


def _until(c: Cluster, kind: str, key: str | None = None) -> Message:
    """Handle messages in order until the next one is a `kind` message (for task `key`)."""
    for _ in range(200):
        pending = c.deliverable()
        assert pending, f"no {kind} message for {key} came"
        msg = pending[0]
        if msg.kind == kind and (key is None or getattr(msg.payload, "key", None) == key):
            return msg
        _handle(c, msg)
    raise AssertionError(f"no {kind} message for {key} in 200 steps")


def _all(c: Cluster) -> None:
    while pending := c.deliverable():
        _handle(c, pending[0])


def _status(c: Cluster, run_id: str = "r") -> RunStatus:
    snap = c.store.load(run_id, [])
    assert snap is not None
    return snap.run.status


def _ends_well(c: Cluster, status: RunStatus) -> None:
    try:
        c.drain()
        problems = c.problems()
        assert not problems, "\n".join(problems)
        assert _status(c) is status
    finally:
        c.close()


def test_a_gate_whose_completion_publish_failed_once_still_chooses() -> None:
    c = _cluster("il-branch", {"x": 1, "fails": {}})  # base 2: even, so `then`: left -> 4
    gate = _until(c, "task", "branch")
    c.outage = 1  # the worker stores the gate's result, then its task.succeeded fails
    _handle(c, gate)
    assert c.outage == 0
    assert gate in c.deliverable()  # not acknowledged: redelivered
    _ends_well(c, RunStatus.SUCCEEDED)


def test_retrying_a_run_whose_run_time_map_producer_failed_grows_the_map() -> None:
    # `listed` fails attempts 1 and 2 (the run fails), its attempt 3 (after the retry) works.
    c = _cluster("il-run-time-map", {"x": 1, "items": [1, 2], "fails": {"listed": 2}})
    c.drain()
    assert _status(c) is RunStatus.FAILED
    c.start_resume(0, "r", 1)
    c.finish(0)
    _ends_well(c, RunStatus.SUCCEEDED)


def test_a_map_over_a_subflow_result_grows_from_the_child_result() -> None:
    c = _cluster("il-map-subflow-result", {"items": [1, 2], "fails": {}})
    _ends_well(c, RunStatus.SUCCEEDED)


def test_a_run_returning_a_failed_result_fails_even_when_another_task_allowed_it() -> None:
    c = _cluster("il-allow-return", {"x": 1, "fails": {"base": 2}})
    _ends_well(c, RunStatus.FAILED)


def test_a_crash_between_a_child_start_and_the_hold_keeps_the_child() -> None:
    c = _cluster("il-subflow", {"x": 1, "fails": {}})
    node = _until(c, "task", "il-child")
    c.deliver(0, node)
    gate = c.instances[0].gate
    while gate.busy and len(c.store.list_runs()) < 2:  # until the child run exists
        c.step(0)
    assert gate.busy, "the worker ended without parking after the child's start"
    c.kill(0)  # before its next store call: the hold
    c.advance_clock(BIG_JUMP_S)  # past the node's lease
    _ends_well(c, RunStatus.SUCCEEDED)


def test_a_cancel_during_a_run_time_map_growth_cancels_every_child() -> None:
    c = _cluster("il-returns-run-time-map", {"items": [1, 2, 3], "fails": {}}, k=2)
    done = _until(c, "event", "listed")
    c.deliver(0, done)
    gate = c.instances[0].gate
    while gate.busy and gate.next_call != "commit":
        c.step(0)
    c.step(0)  # its first commit: the producer's completion (and the growth it brings)
    c.start_cancel(1, "r")
    c.finish(1)  # the cancel commits while the growth's handler is parked
    c.finish(0)
    _ends_well(c, RunStatus.CANCELLED)


def test_a_retry_timer_that_failed_five_times_still_fires_later() -> None:
    c = _cluster("il-chain", {"x": 1, "fails": {"base": 1}})
    _all(c)  # base attempt 1 failed: attempt 2 waits for its retry timer
    snap = c.store.load("r", ["base"])
    assert snap is not None
    assert snap.tasks["base"].status.value == "SCHEDULED"
    c.outage = 10_000
    for _ in range(5):  # five ticks, past every backoff, each failing to publish the request
        c.advance_clock(700)
        c.start_tick(0)
        c.finish(0)
    c.outage = 0
    # Quarantined after five failures: recorded once for an operator, and kept as a timer.
    (letter,) = c.store.list()
    assert (letter.source, letter.event_id) == ("sweeper", "r/dispatch-base-2")
    c.expected_letters.add(letter.id)
    assert not c.lost_timers(), c.lost_timers()
    _ends_well(c, RunStatus.SUCCEEDED)


def test_each_failed_flow_attempt_is_announced_under_its_own_id() -> None:
    # `base` fails attempts 1-4: flow attempt 1 (attempts 1, 2) and 2 (attempts 3, 4) fail.
    c = _cluster("il-chain", {"x": 1, "fails": {"base": 4}})
    c.drain()
    assert _status(c) is RunStatus.FAILED
    c.start_resume(0, "r", 1)
    c.finish(0)
    c.drain()
    snap = c.store.load("r", [])
    assert snap is not None
    assert snap.run.attempt == 2
    _ends_well(c, RunStatus.FAILED)


def _take(c: Cluster, kind: str, key: str) -> Message:
    """The waiting `kind` message for task `key` (out of order: the others stay pooled)."""
    found = [m for m in c.deliverable() if m.kind == kind and m.payload.key == key]  # type: ignore[union-attr]
    assert found, f"no {kind} message for {key} waits: {[str(m) for m in c.deliverable()]}"
    return found[0]


def test_the_hourly_recheck_does_not_grow_a_nested_map_before_its_source_children_end() -> None:
    # listed -> item[0] (fails once, retried after 5 s) -> bump[0] (over item's results) -> gather
    c = _cluster("il-nested-map", {"items": [0], "fails": {"item:0": 1}})
    _handle(c, _until(c, "task", "item[0]"))  # attempt 1 fails
    _handle(c, _take(c, "event", "item[0]"))  # item[0] waits 5 s for attempt 2
    c.advance_clock(3601)  # past the retry delay and the run's hourly recheck, in one tick
    c.start_tick(0)
    c.finish(0)
    snap = c.store.load("r", ["item[0]", "bump[0]"])
    assert snap is not None
    assert not snap.tasks["item[0]"].status.terminal
    # Nothing of `bump` may exist before item[0] ended: its one child reads item[0]'s result.
    assert "bump[0]" not in snap.tasks, snap.tasks["bump[0]"]
    _ends_well(c, RunStatus.SUCCEEDED)


def test_a_resume_grows_a_run_time_map_whose_producer_succeeded_before_the_cancel() -> None:
    # `base` fails attempt 1 (its retry waits 5 s) while `listed` succeeds with [0]; the
    # map `item` waits for both. Cancelled, then resumed: base runs again, listed does not.
    c = _cluster("il-run-time-map", {"x": 0, "items": [0], "fails": {"base": 1}})
    _all(c)
    snap = c.store.load("r", ["base", "listed"])
    assert snap is not None
    assert snap.tasks["base"].status.value == "SCHEDULED"
    assert snap.tasks["listed"].status.value == "SUCCEEDED"
    c.start_cancel(0, "r")
    c.finish(0)
    c.start_resume(0, "r", 1)
    c.finish(0)
    c.drain()
    grown = c.store.load("r", ["item"])
    assert grown is not None
    assert grown.tasks["item"].width == 1, grown.tasks["item"]  # listed returned [0]
    _ends_well(c, RunStatus.SUCCEEDED)  # gather([item[0]]) = 3 * 0 + 1
