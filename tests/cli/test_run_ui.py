"""`kumoflow run --ui`: the in-process run's history in the dashboard, where a retry runs to
the end in the same process; Ctrl-C stops it with the run's status then as the exit code."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[2]
OBSERVED = "tests/flows/observed.py:observed"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        return str(r.read().decode())


def test_a_failed_run_is_retried_from_its_dashboard_to_success(tmp_path: Path) -> None:
    marker, counter = tmp_path / "marker", tmp_path / "counter"
    port = _free_port()
    command = [sys.executable, "-m", "orchestrator", "run", OBSERVED, "-p", "n=1"]
    command += ["-p", f"counter={counter}", "-p", f"marker={marker}", "--ui", "--port", str(port)]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    def read() -> None:
        for line in proc.stderr or []:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None:
            assert time.monotonic() < deadline, "no dashboard URL printed"
            assert proc.poll() is None, "kumoflow run ended instead of serving the dashboard"
            try:
                found = re.search(r"(http://127\.0\.0\.1:\d+/runs/(\w+))", lines.get(timeout=1))
            except queue.Empty:
                continue
            url = found.group(1) if found else None
        run_id = url.rsplit("/", 1)[1]
        page = ""
        while 'data-node="picky" data-status="failed"' not in page:  # up once it answers
            assert time.monotonic() < deadline, "the dashboard did not answer"
            try:
                page = _get(url)
            except OSError:
                time.sleep(0.1)
        assert 'header class="run" data-status="failed"' in page
        assert counter.read_text() == "1\n"
        listing = _get(f"http://127.0.0.1:{port}/runs")
        assert f'data-run="{run_id}"' in listing
        marker.touch()  # the cause is fixed
        retry = urllib.request.Request(f"{url}/retry", method="POST")
        with urllib.request.urlopen(retry, timeout=30) as r:
            assert r.url == url
        while 'header class="run" data-status="succeeded"' not in page:  # driven in-process
            assert time.monotonic() < deadline, f"the retried run did not finish: {page[:2000]}"
            time.sleep(0.1)
            page = _get(url)
        assert counter.read_text() == "1\n"  # the succeeded task kept its result
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0  # the run's status when the dashboard stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_ui_goes_with_the_memory_backend_only() -> None:
    result = CliRunner().invoke(
        main, ["run", f"{ROOT}/{OBSERVED}", "--backend", "emulator", "--ui"]
    )
    assert result.exit_code == 2
    assert "`kumoflow ui` shows them" in result.output
