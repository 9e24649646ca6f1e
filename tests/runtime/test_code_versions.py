"""Runs are pinned to code: a fix that changes no DAG is a new flow version, each attempt
records the code its worker imported, and task_input_hash keys on the task's source, so a
fixed task stops serving the result its buggy code cached (in memory)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.contracts import flow_version
from orchestrator.runtime import TaskRunContext, module_digest, source_digest, task_input_hash
from orchestrator.sdk import load_module
from orchestrator.testing import MemoryBackend

BUGGY = """
from pathlib import Path

from orchestrator import flow, task, task_input_hash


def bump(counter: str) -> None:
    with Path(counter).open("a") as f:
        f.write("x")


@task(name="square", cache_key_fn=task_input_hash, cache_expiration=3600)
def square(x: int, counter: str) -> int:
    bump(counter)
    return x * x + 1  # the bug


@flow(name="squares")
def squares(x: int, counter: str) -> int:
    return square(x, counter)
"""
FIXED = BUGGY.replace("return x * x + 1  # the bug", "return x * x  # fixed")
MODULE = "pinned_to_code"


@pytest.fixture
def flow_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / f"{MODULE}.py"
    path.write_text(BUGGY)
    yield path
    sys.modules.pop(MODULE, None)


def test_a_code_only_fix_is_a_new_version_and_no_longer_serves_the_buggy_cache(
    flow_file: Path, tmp_path: Path
) -> None:
    backend = MemoryBackend()  # one store and one cache bucket for every run below
    counter = str(tmp_path / "calls")
    buggy = load_module(str(flow_file)).squares
    first = backend.run(buggy, {"x": 3, "counter": counter})
    assert first.value == 10
    cached = backend.run(buggy, {"x": 3, "counter": counter})
    assert cached.value == 10
    assert Path(counter).read_text() == "x"  # the second run reused the first's result

    flow_file.write_text(FIXED)  # the same DAG; another size, so nothing stale is reused
    fixed = importlib.reload(sys.modules[MODULE]).squares
    assert fixed.spec.nodes == buggy.spec.nodes
    assert fixed.spec.code != buggy.spec.code
    assert flow_version(fixed.spec) != flow_version(buggy.spec)
    second = backend.run(fixed, {"x": 3, "counter": counter})
    assert second.value == 9  # ran the fixed code, not the buggy code's cached 10
    assert Path(counter).read_text() == "xx"
    again = backend.run(fixed, {"x": 3, "counter": counter})
    assert again.value == 9
    assert Path(counter).read_text() == "xx"  # and caches its own result

    # Each attempt names the code its worker imported: the flow's own, run by run.
    (buggy_attempt,) = first.tasks["square"].attempts
    (fixed_attempt,) = second.tasks["square"].attempts
    assert buggy_attempt.code == buggy.spec.code[MODULE]
    assert fixed_attempt.code == fixed.spec.code[MODULE] == module_digest(fixed.fn)
    assert buggy_attempt.code != fixed_attempt.code


def test_task_input_hash_keys_on_the_tasks_source() -> None:
    def one(x: int) -> int:
        return x

    def other(x: int) -> int:
        return x + 1

    def context(fn: Callable[[int], int]) -> TaskRunContext:
        return TaskRunContext("r", "t", "t", "m:t", None, source_digest(fn))

    args = {"x": 1}
    assert task_input_hash(context(one), args) == task_input_hash(context(one), args)
    assert task_input_hash(context(one), args) != task_input_hash(context(other), args)
    assert task_input_hash(context(one), args) != task_input_hash(context(one), {"x": 2})
