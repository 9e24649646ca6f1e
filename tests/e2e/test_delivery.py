"""At-least-once delivery on the real stack: every message twice; a crash between commit and
publish. Results must not change and no task's user function may run twice."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.contracts import RunStatus
from tests.flows.counted import counted, counts, expected

pytestmark = pytest.mark.emulator
ITEMS = list(range(20))


def _log_lines(stack: Any, name: str, run_ids: set[str], needle: str) -> int:
    path = stack.config.log_dir / f"{name}.log"
    found = 0
    for line in path.read_text().splitlines():
        if needle in line and line.startswith("{") and json.loads(line).get("run_id") in run_ids:
            found += 1
    return found


def _run_counted(backend: Any, folder: Path, timeout: float = 60) -> Any:
    folder.mkdir()
    out = backend.run(counted, {"folder": str(folder), "items": ITEMS}, timeout=timeout)
    assert out.status is RunStatus.SUCCEEDED
    assert out.value == expected(ITEMS)
    assert all(n == 1 for n in counts(folder).values()), counts(folder)
    assert len(counts(folder)) == 4 + len(ITEMS)
    assert all(len(t.attempts) == 1 for t in out.tasks.values())
    return out


def test_every_message_delivered_twice(
    emulator_backend: Any, dev: Any, doubled: None, tmp_path: Path
) -> None:
    out = _run_counted(emulator_backend, tmp_path / "twice")
    # Every request really arrived twice: once it ran, once it was recognised as a duplicate
    # (or, landing between result write and completion, re-announced the stored result).
    deadline = time.monotonic() + 5
    while True:
        handled = _log_lines(dev, "task-worker", {out.run.run_id}, '"message": "attempt ')
        if handled >= 2 * len(out.tasks) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert handled >= 2 * len(out.tasks)
    assert all(n == 1 for n in counts(tmp_path / "twice").values())


@pytest.fixture
def crashing(dev: Any) -> Iterator[None]:
    """The orchestrator dies at every 4th commit, the run starter at each first commit."""
    from orchestrator import emulators
    from orchestrator.local import FUNCTIONS, FUNCTIONS_SOURCE

    faults = {"orchestrator": "after-commit:4", "run_starter": "after-commit:1"}

    def restart(with_faults: bool) -> None:
        for fn in FUNCTIONS:
            if fn.name in faults:
                env = dev.function_env() | (
                    {"KUMOFLOW_FAULTS": faults[fn.name]} if with_faults else {}
                )
                emulators.start_function(
                    dev.config,
                    fn.name.replace("_", "-"),
                    target=fn.name,
                    source=FUNCTIONS_SOURCE,
                    port=dev.functions_port + fn.local_port_offset,
                    env=env,
                    # One request per process while crashing: a kill then interrupts exactly
                    # the handler that hit the fault, not bystanders mid-publish.
                    threads=1 if with_faults else 16,
                )

    restart(True)
    try:
        yield
    finally:
        restart(False)


def test_crash_between_commit_and_publish(
    emulator_backend: Any, dev: Any, crashing: None, tmp_path: Path
) -> None:
    # Each crash costs a worker restart plus Pub/Sub's redelivery backoff: give it time.
    out = _run_counted(emulator_backend, tmp_path / "crash", timeout=180)
    run_ids = {out.run.run_id}
    assert _log_lines(dev, "orchestrator", set(), "fault injected") == 0  # no run_id on that line
    crashes = sum(
        "fault injected" in line
        for name in ("orchestrator", "run-starter")
        for line in (dev.config.log_dir / f"{name}.log").read_text().splitlines()
    )
    assert crashes >= 3
    # Each attempt was dispatched once: no worker saw a duplicate request.
    assert _log_lines(dev, "task-worker", run_ids, "attempt ignored (duplicate)") == 0
