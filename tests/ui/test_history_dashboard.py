"""`kumoflow ui` with no stack, over the history `kumoflow run` keeps (SQLite in KUMOFLOW_HOME):
in Chromium, the run page shows the run, its durations, parameters, map counts and timeline.

The screenshot lands in test-artifacts/ui; with KUMOFLOW_DOCS_IMG=1 it also replaces
docs/img/run-page.png, the one the README shows (tests leave tracked files alone otherwise)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import ARTIFACTS, ROOT

DOCS_IMG = ROOT / "docs" / "img" / "run-page.png"
DURATION = re.compile(r"^\d+(\.\d+)? s$|^\d+ m \d\d s$")


def _env(home: Path) -> dict[str, str]:
    # KUMOFLOW_STATE_DIR of no stack: the commands act on the history, as with no stack up.
    return {**os.environ, "KUMOFLOW_HOME": str(home), "KUMOFLOW_STATE_DIR": str(home / "stack")}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A map_reduce run of 5 items kept in a fresh history, and `kumoflow ui` serving it:
    (base URL, run id)."""
    home = tmp_path / "home"
    ran = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "examples/map_reduce.py:map_reduce",
         "-p", "items=[1, 2, 3, 4, 5]", "-p", "factor=3", "--json"],
        cwd=ROOT, env=_env(home), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout.splitlines()[-1])["run_id"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ui = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "ui", "--port", str(port), "--read-only"],
        cwd=ROOT, env=_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert ui.poll() is None, "kumoflow ui ended instead of serving"
            try:
                with urllib.request.urlopen(f"{url}/runs", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "kumoflow ui did not answer"
                time.sleep(0.1)
        yield url, run_id
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def test_the_dashboard_over_the_history_shows_a_runs_durations_parameters_and_timeline(
    served: tuple[str, str], browser: Any
) -> None:
    url, run_id = served
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/runs")
    row = page.locator(f'tr[data-run="{run_id}"]')
    assert row.locator(".badge").inner_text() == "succeeded"
    assert DURATION.match(row.locator("td.duration").inner_text())

    page.goto(f"{url}/runs/{run_id}")
    assert page.locator("header.run").get_attribute("data-status") == "succeeded"
    assert DURATION.match(page.locator("#run-duration").inner_text())
    params = {
        r.locator("th").inner_text(): r.locator("td").inner_text()
        for r in page.locator("tr[data-param]").all()
    }
    assert params == {"items": "[1, 2, 3, 4, 5]", "factor": "3"}
    scale = page.locator('g.node[data-node="scale"]')
    assert scale.locator("text.name").text_content() == "scale \u00d75"
    assert scale.locator("title").text_content() == "scale: 5 children: 5 succeeded"
    keys = [f"scale[{i}]" for i in range(5)] + ["add-all"]
    assert [r.get_attribute("data-task") for r in page.locator("tr[data-task]").all()] == keys
    for r in page.locator("tr[data-task]").all():
        assert DURATION.match(r.locator("td.duration").inner_text())
    lanes = page.locator("g.lane")
    assert [lane.get_attribute("data-lane") for lane in lanes.all()] == keys
    for lane in lanes.all():
        bar = lane.locator("g.bar")
        assert bar.count() == 1
        assert bar.get_attribute("data-status") == "succeeded"
        assert float(bar.locator("rect.ran").get_attribute("width") or 0) >= 1
    assert page.locator("svg[aria-label='timeline of task attempts']").is_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "run-page-history.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("KUMOFLOW_DOCS_IMG") == "1":
        shutil.copyfile(shot, DOCS_IMG)
