"""The run page's rules: a map counts its children (never itself), durations, the timeline's
geometry, parameters with secrets masked, queued shown apart from running, and tracebacks
from the user's frame with the whole trace behind a toggle."""

from __future__ import annotations

import html
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from examples.map_reduce import map_reduce
from orchestrator import flow, task
from orchestrator.contracts import Attempt, RunStatus, TaskRun, TaskStatus
from orchestrator.local import duration_text, elapsed
from orchestrator.runtime import MASK, InProcessRunner
from orchestrator.ui import TIMELINE_ROW, TIMELINE_W, Node, create_app, run_view, timeline
from tests.flows.dynamic import list_process_summarize
from tests.flows.observed import observed
from tests.ui.conftest import ROOT, serving

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        return str(r.read().decode())


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (0.0123, "0.012 s"), (3.44, "3.4 s"), (59.94, "59.9 s"), (125, "2 m 05 s"),
     (3599.6, "1 h 00 m"), (3720, "1 h 02 m"), (90061, "25 h 01 m")],
)  # fmt: skip
def test_durations_read_in_the_unit_that_fits(seconds: float | None, text: str) -> None:
    assert duration_text(seconds) == text


def test_a_duration_runs_to_the_end_or_to_now_and_not_before_the_start() -> None:
    assert elapsed(None, _at(5), _at(9)) is None  # never started
    assert elapsed(_at(1), _at(4), _at(9)) == 3.0
    assert elapsed(_at(1), None, _at(9)) == 8.0  # still running: so far
    assert elapsed(_at(5), _at(4), _at(9)) == 0.0  # clocks of two machines a little apart


@pytest.mark.parametrize(
    ("run_flow", "params", "node", "others"),
    [
        (list_process_summarize, {"count": 5}, "measure", ["names", "summarize"]),  # run-time
        (map_reduce, {"items": [1, 2, 3, 4, 5]}, "scale", ["add-all"]),  # planned
    ],
)
def test_a_map_of_five_counts_five_children_and_not_itself(
    backend: Any, dashboard: str, run_flow: Any, params: dict[str, Any], node: str,
    others: list[str],
) -> None:  # fmt: skip
    out = backend.run(run_flow, params)
    assert out.status is RunStatus.SUCCEEDED
    view = run_view(backend.rt, out.run.run_id)
    nodes = {n.key: n for n in view.dag.nodes}
    assert nodes[node].total == 5
    assert nodes[node].summary == "5 children: 5 succeeded"
    assert nodes[node].parents == (["names"] if node == "measure" else [])
    keys = [row.task.key for row in view.tasks]
    assert keys == [*others[:-1], *(f"{node}[{i}]" for i in range(5)), others[-1]]
    assert view.total == view.counts["succeeded"] == 5 + len(others)
    assert [key for key, _ in view.timeline.rows] == keys
    page = _get(f"{dashboard}/runs/{out.run.run_id}")
    assert f"{node} \u00d75</text>" in page
    assert f'data-task="{node}"' not in page  # the map's own record is no row
    assert f"{5 + len(others)} succeeded</span>" in page
    children = _get(f"{dashboard}/runs/{out.run.run_id}?node={node}")
    assert children.count('<tr data-task="') == 5


def _record(status: TaskStatus, attempts: tuple[Attempt, ...] = ()) -> TaskRun:
    return TaskRun(run_id="r", key="m", node="m", name="m", status=status, attempts=attempts)


def test_a_run_time_map_without_children_shows_its_own_state() -> None:
    growing = Node("m", "m", Counter(), mapped=True, parents=[], own=_record(TaskStatus.RUNNING))
    assert (growing.status, growing.summary, growing.total) == ("running", "no children yet", 0)
    empty = Node("m", "m", Counter(), mapped=True, parents=[], own=_record(TaskStatus.SUCCEEDED))
    assert (empty.status, empty.summary) == ("succeeded", "0 children, succeeded")
    some = Node("m", "m", Counter({TaskStatus.QUEUED: 2, TaskStatus.RUNNING: 1}), mapped=True,
                parents=[], own=_record(TaskStatus.SUCCEEDED))  # fmt: skip
    assert (some.status, some.summary) == ("running", "3 children: 1 running, 2 queued")


def test_the_timeline_places_each_attempts_wait_and_run_on_the_runs_time_axis() -> None:
    px = TIMELINE_W / 8  # the run spans 8 s
    retried = _record(
        TaskStatus.SUCCEEDED,
        (
            Attempt(number=1, status=TaskStatus.FAILED, queued_at=_at(1), started_at=_at(2),
                    ended_at=_at(4)),
            Attempt(number=2, status=TaskStatus.SUCCEEDED, queued_at=_at(5), started_at=_at(5),
                    ended_at=_at(7)),
        ),
    )  # fmt: skip
    cancelled = _record(
        TaskStatus.CANCELLED,
        (Attempt(number=1, status=TaskStatus.CANCELLED, queued_at=_at(2), ended_at=_at(3)),),
    )
    running = _record(
        TaskStatus.RUNNING,
        (Attempt(number=1, status=TaskStatus.RUNNING, queued_at=_at(6), started_at=_at(6)),),
    )
    shown = timeline([retried, cancelled, running], T0, _at(8), now=_at(8))
    (_, bars), (_, [never]), (_, [ongoing]) = shown.rows
    assert [(b.attempt, b.status, b.x, b.wait, b.run) for b in bars] == [
        (1, "failed", px, px, 2 * px),
        (2, "succeeded", 5 * px, 0.0, 2 * px),
    ]
    assert (never.x, never.wait, never.run) == (2 * px, px, 0.0)  # waited, never ran
    assert "never started" in never.title
    assert (ongoing.x, ongoing.run) == (6 * px, 2 * px)  # runs on to now
    assert [label for _, label in shown.ticks] == ["0.000 s", "2.0 s", "4.0 s", "6.0 s", "8.0 s"]
    assert shown.ticks[-1][0] == TIMELINE_W
    assert shown.height == 3 * TIMELINE_ROW


@task(name="connect")
def connect(host: str, settings: dict[str, Any]) -> str:
    return host


@flow(name="with-secrets")
def with_secrets(host: str, db_password: str, settings: dict[str, Any]) -> str:
    return connect(host, settings)


def test_the_run_page_shows_parameters_with_secrets_masked_and_its_duration() -> None:
    params = {"host": "db.internal", "db_password": "hunter2",
              "settings": {"pool": 4, "api_token": "t-123"}}  # fmt: skip
    with InProcessRunner(functions=with_secrets.functions()) as runner:
        out = runner.run(with_secrets.spec, params)
        assert out.run.status is RunStatus.SUCCEEDED
        with serving(create_app(runner.rt)) as url:
            page = html.unescape(_get(f"{url}/runs/{out.run.run_id}"))
            listing = _get(f"{url}/runs")
    assert '<th>host</th><td><code>"db.internal"</code>' in page
    assert f'<th>db_password</th><td><code>"{MASK}"</code>' in page
    assert f'{{"pool": 4, "api_token": "{MASK}"}}' in page
    assert "hunter2" not in page
    assert "t-123" not in page
    took = duration_text(elapsed(out.run.started_at, out.run.ended_at, out.run.ended_at))
    assert f'<dd id="run-duration">{took}</dd>' in page
    assert f'<td class="duration">{took}</td>' in listing


def test_queued_is_coloured_and_labelled_apart_from_running() -> None:
    css = (ROOT / "orchestrator" / "ui" / "static" / "style.css").read_text()
    rules = {line.split("{")[0].strip(): line for line in css.splitlines() if "{" in line}
    queued, running = rules[".node.queued rect"], rules[".node.running rect"]
    assert queued.split("{")[1] != running.split("{")[1]
    assert ".badge.queued" in rules
    node = Node("q", "q", Counter({TaskStatus.QUEUED: 1}), mapped=False, parents=[])
    assert (node.status, node.summary) == ("queued", "queued")


def test_a_failed_attempt_shows_its_traceback_from_the_task_and_the_whole_behind_a_toggle(
    backend: Any, dashboard: str, tmp_path: Any
) -> None:
    params = {"n": 1, "counter": str(tmp_path / "c"), "marker": str(tmp_path / "none")}
    out = backend.run(observed, params)
    assert out.status is RunStatus.FAILED
    page = html.unescape(_get(f"{dashboard}/runs/{out.run.run_id}/tasks/picky"))
    shown = page.split('<pre class="traceback">')[1].split("</pre>")[0]
    lines = shown.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1].endswith("frames of kumoflow and Python hidden]")
    assert "tests/flows/observed.py" in lines[2]
    assert "orchestrator/runtime" not in shown
    toggle = page.split('<details class="full-trace">')[1].split("</details>")[0]
    assert "orchestrator/runtime/worker/_worker.py" in toggle
    assert "tests/flows/observed.py" in toggle
    log = page.split('<pre class="log">')[1].split("</pre>")[0]
    assert "frames of kumoflow and Python hidden]" in log  # the log's copy too
    assert "orchestrator/runtime" not in log
    run_page = html.unescape(_get(f"{dashboard}/runs/{out.run.run_id}"))
    assert '<details class="full-trace">' in run_page  # the run's error: the same rule
