"""Log capture costs what is written: a `\\r` progress bar (tens of thousands of writes and no
newline) is neither re-joined nor re-scanned per write, and its line is kept clipped."""

from __future__ import annotations

import sys
import tracemalloc

import pytest

from orchestrator import flow, task
from orchestrator.contracts import RunStatus, clip
from orchestrator.local import run_head, run_logs
from orchestrator.runtime import MAX_LINE_CHARS, Capture
from orchestrator.testing import MemoryBackend

WRITES = 40_000
BAR = [f"\r progress {i % 100:3d}% |{'#' * (i % 10):<10}|" for i in range(100)]


def _bar(i: int) -> str:
    return BAR[i % len(BAR)]


@pytest.mark.timeout(120)  # generous: quadratic capture took minutes; the checks are structural
def test_a_progress_bar_holds_one_line_of_text_however_long_it_runs() -> None:
    cap = Capture({})
    written = "".join(_bar(i) for i in range(WRITES))
    assert len(written) > 50 * MAX_LINE_CHARS
    tracemalloc.start()
    try:
        for i in range(WRITES):
            cap.write("stdout", _bar(i))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Re-joining the pending text per write allocates it again each time (peak: twice all
    # that was written); appending holds at most one line's worth.
    assert peak < 8 * MAX_LINE_CHARS, peak
    assert cap.pending("stdout") == MAX_LINE_CHARS
    cap.write("stdout", " done\n")
    assert cap.pending("stdout") == 0
    (entry,) = cap.entries
    assert entry["message"] == clip(written + " done", MAX_LINE_CHARS)


def test_lines_split_across_writes_are_kept_as_written() -> None:
    cap = Capture({})
    for text in ["a", "b\nc", "\n", "d\n\ne", "f"]:
        cap.write("stdout", text)
    cap.write("stderr", "oops\n")
    assert [(e["stream"], e["message"]) for e in cap.entries] == [
        ("stdout", "ab"),
        ("stdout", "c"),
        ("stdout", "d"),
        ("stdout", ""),
        ("stderr", "oops"),
    ]
    assert cap.pending("stdout") == 2
    assert cap.dump().decode().splitlines()[-1].endswith('"message": "ef"}')


@task(name="progress")
def progress(writes: int) -> int:
    for i in range(writes):
        sys.stdout.write(_bar(i))
    sys.stdout.write("\n")
    return writes


@flow(name="progress-bar")
def progress_bar(writes: int) -> int:
    return progress(writes)


@pytest.mark.timeout(120)
def test_a_task_drawing_a_progress_bar_keeps_its_line_clipped() -> None:
    backend = MemoryBackend()
    out = backend.run(progress_bar, {"writes": WRITES})
    assert out.status is RunStatus.SUCCEEDED, out.run.error
    (line,) = run_logs(backend.rt, run_head(backend.rt, out.run.run_id))
    assert line.entry["stream"] == "stdout"
    assert line.entry["message"] == clip("".join(_bar(i) for i in range(WRITES)), MAX_LINE_CHARS)
