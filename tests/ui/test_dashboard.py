"""The dashboard's pages over real runs, on every backend: plain HTTP, and a real browser."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import RunStatus
from tests.flows.jobs import long_flow
from tests.flows.observed import observed, wide
from tests.flows.subflows import with_subflow
from tests.ui.conftest import ARTIFACTS


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        return str(r.read().decode())


def _failed_run(backend: Any, tmp_path: Path) -> tuple[Any, Path]:
    marker = tmp_path / "m"
    params = {"n": 1, "counter": str(tmp_path / "c"), "marker": str(marker)}
    out = backend.run(observed, params)
    assert out.status is RunStatus.FAILED
    return out, marker


def test_pages_show_runs_dag_tasks_logs_and_flows(
    backend: Any, dashboard: str, tmp_path: Path
) -> None:
    out, _ = _failed_run(backend, tmp_path)
    run_id = out.run.run_id
    listing = _get(f"{dashboard}/runs?flow=observed")
    assert f'data-run="{run_id}"' in listing
    assert f'data-run="{run_id}"' not in _get(f"{dashboard}/runs?flow=observed&status=succeeded")
    page = _get(f"{dashboard}/runs/{run_id}")
    for key, status in [("count", "succeeded"), ("chatty", "succeeded"), ("picky", "failed"),
                        ("after", "skipped")]:  # fmt: skip
        assert f'data-node="{key}" data-status="{status}"' in page
        assert f'data-task="{key}" data-status="{status}"' in page
    assert 'id="retry"' in page
    task = _get(f"{dashboard}/runs/{run_id}/tasks/picky")
    assert "picky got 3" in task
    assert "ValueError: no marker at" in task
    # Each attempt names the code it ran.
    assert f"code {observed.spec.code['tests.flows.observed']}" in task
    assert "observed" in _get(f"{dashboard}/flows")
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(f"{dashboard}/runs/no-such-run")
    assert missing.value.code == 404
    missing.value.close()


def test_retry_from_the_dashboard_moves_a_failed_run_on(
    backend: Any, dashboard: str, tmp_path: Path
) -> None:
    out, marker = _failed_run(backend, tmp_path)
    marker.touch()
    request = urllib.request.Request(f"{dashboard}/runs/{out.run.run_id}/retry", method="POST")
    with urllib.request.urlopen(request, timeout=30) as r:  # follows the 303 to the run page
        assert r.url.endswith(f"/runs/{out.run.run_id}")
    run = backend.rt.state.load(out.run.run_id, []).run
    assert run.attempt == 2
    assert run.status in (RunStatus.RUNNING, RunStatus.SUCCEEDED)
    again = urllib.request.Request(f"{dashboard}/runs/{out.run.run_id}/retry", method="POST")
    if run.status is RunStatus.RUNNING:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(again, timeout=30)
        assert refused.value.code == 409  # only a failed or cancelled run
        refused.value.close()


def test_in_a_browser_the_retry_button_retries_a_failed_run_to_success(
    backend: Any, dashboard: str, browser: Any, tmp_path: Path
) -> None:
    if backend.name != "emulator":
        pytest.skip("a retried run needs workers: the local stack's functions")
    out, marker = _failed_run(backend, tmp_path)
    run_id = out.run.run_id
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{dashboard}/runs")
    assert page.locator(f'tr[data-run="{run_id}"] .badge').inner_text() == "failed"
    page.screenshot(path=str(ARTIFACTS / "runs.png"), full_page=True)
    page.goto(f"{dashboard}/runs/{run_id}")
    states = {
        n.get_attribute("data-node"): n.get_attribute("data-status")
        for n in page.locator("g.node").all()
    }
    assert states == {"count": "succeeded", "chatty": "succeeded", "picky": "failed",
                      "after": "skipped"}  # fmt: skip
    page.screenshot(path=str(ARTIFACTS / "run-failed.png"), full_page=True)
    marker.touch()  # the cause is fixed
    page.click("#retry")
    page.wait_for_selector('header.run[data-status="succeeded"]', timeout=60_000)  # live refresh
    assert page.locator('g.node[data-status="succeeded"]').count() == 4
    page.screenshot(path=str(ARTIFACTS / "run-retried.png"), full_page=True)
    page.goto(f"{dashboard}/runs/{run_id}/tasks/picky")
    assert page.locator("section.attempt").count() == 2
    page.screenshot(path=str(ARTIFACTS / "task.png"), full_page=True)


def test_a_run_of_a_thousand_mapped_children_renders_grouped(
    backend: Any, dashboard: str, browser: Any
) -> None:
    out = backend.run(wide, {"items": list(range(1000)), "bad": 7}, timeout=300)
    assert out.status is RunStatus.FAILED
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{dashboard}/runs/{out.run.run_id}")  # warm: the plan is cached per process
    started = time.perf_counter()
    page.goto(f"{dashboard}/runs/{out.run.run_id}")
    took = time.perf_counter() - started
    assert page.locator("g.node").count() == 3  # fail-on x1000, square x1000, total
    summary = page.locator('g.node[data-node="fail-on"] title').text_content() or ""
    assert "1000 children: 1 failed, 999 succeeded" in summary
    assert page.locator("table.tasks tbody tr").count() == 50  # a page of tasks
    page.screenshot(path=str(ARTIFACTS / f"wide-{backend.name}.png"), full_page=True)
    # Timed for the record, not asserted: these machines are too noisy for a time limit.
    print(f"1,000-wide run page on {backend.name}: {took:.3f} s")


def test_a_subflow_run_and_its_parent_node_link_to_each_other(backend: Any, dashboard: str) -> None:
    out = backend.run(with_subflow, {"n": 2})
    assert out.status is RunStatus.SUCCEEDED
    child = out.tasks["child-sum"].child_run
    assert child is not None
    node_page = _get(f"{dashboard}/runs/{out.run.run_id}/tasks/child-sum")
    assert f'id="child-run" href="/runs/{child}"' in node_page
    child_page = _get(f"{dashboard}/runs/{child}")
    assert f'id="parent-run" href="/runs/{out.run.run_id}/tasks/child-sum"' in child_page


def test_a_job_run_attempt_names_its_execution_and_links_its_logs(
    backend: Any, dashboard: str
) -> None:
    out = backend.run(long_flow, {"n": 2, "seconds": 0.0}, timeout=120)
    assert out.status is RunStatus.SUCCEEDED
    (attempt,) = out.tasks["long-sum"].attempts
    assert attempt.execution is not None
    page = _get(f"{dashboard}/runs/{out.run.run_id}/tasks/long-sum")
    short = attempt.execution.rsplit("/", 1)[-1]
    assert f'job execution <code class="execution">{short}</code>' in page
    if backend.name == "emulator":  # the stand-in serves each execution's output
        assert f'<a class="execution-logs" href="{attempt.logs_url}">logs</a>' in page
