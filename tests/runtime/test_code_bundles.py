"""A flow pinned to its code bundle (FlowSpec.bundle): its runs' task requests carry the bundle
to the transport, the worker kept for an earlier bundle runs only that one's requests, and the
current worker leaves kept bundles' requests alone (in memory; on the stack:
tests/e2e/test_code_pinning.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.adapters import MemoryStore, from_message, to_message
from orchestrator.contracts import (
    CODE_ATTRIBUTE,
    Envelope,
    Run,
    RunStatus,
    TaskRequested,
    flow_version,
)
from orchestrator.functions import left_to_another
from orchestrator.local import live_bundles, with_bundle
from orchestrator.runtime import RETAINED_ENV, SERVES_ENV, InProcessRunner, code_digest
from tests.flows.subflows import with_subflow

BUNDLE = "0123456789ab"


def test_the_code_rides_as_an_attribute_and_comes_back() -> None:
    event = Envelope(
        id="e1",
        type="dev.kumoflow.task.requested",
        source="//test",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        data=TaskRequested(
            run_id="672a62b7896f4abc", flow_version="147ac5f40f584543350d", key="k", attempt=1
        ),
        code=BUNDLE,
    )
    data, attributes = to_message(event)
    assert attributes[CODE_ATTRIBUTE] == BUNDLE
    assert from_message(data, attributes).code == BUNDLE
    unpinned = event.model_copy(update={"code": None})
    data, attributes = to_message(unpinned)
    assert CODE_ATTRIBUTE not in attributes
    assert from_message(data, attributes).code is None


def test_pinning_renames_subflows_and_moves_sources_into_the_snapshot(tmp_path: Path) -> None:
    spec = with_subflow.spec
    folder = Path(spec.source.path or "").parent
    pinned = with_bundle(spec, BUNDLE, (folder, tmp_path))
    assert pinned.bundle == BUNDLE
    assert flow_version(pinned) != flow_version(spec)
    assert pinned.source.path == str(tmp_path / Path(spec.source.path or "").name)
    assert pinned.subflows, "the example has subflows"
    for version, child in pinned.subflows.items():
        assert child.bundle == BUNDLE
        assert flow_version(child) == version  # keys follow the children's new versions
    used = {n.subflow for n in pinned.nodes if n.subflow}
    assert used <= set(pinned.subflows)
    assert used  # every subflow node points at a pinned child
    # Unset, the field stays out of the wire form (old specs keep their versions).
    assert "bundle" not in json.loads(spec.canonical_json())


def test_every_task_request_of_a_pinned_run_carries_its_bundle() -> None:
    spec = with_bundle(with_subflow.spec, BUNDLE)
    with InProcessRunner(functions=with_subflow.functions()) as runner:
        runner.bus.record = True
        outcome = runner.run(spec, {"n": 3})
        assert outcome.run.status is RunStatus.SUCCEEDED
        requests = [e for t, e in runner.bus.published if t == runner.rt.topics.tasks]
    runs = {e.data.run_id for e in requests if isinstance(e.data, TaskRequested)}
    assert len(runs) == 2  # the parent's tasks and its child run's
    assert {e.code for e in requests} == {BUNDLE}


def test_the_current_worker_leaves_kept_bundles_and_runs_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(RETAINED_ENV, f"{BUNDLE}, aaaaaaaaaaaa")
    monkeypatch.delenv(SERVES_ENV, raising=False)
    assert left_to_another(BUNDLE)
    assert left_to_another("aaaaaaaaaaaa")
    assert not left_to_another("bbbbbbbbbbbb")  # current code, or one nobody keeps any more
    assert not left_to_another(None)  # an unpinned flow


def test_a_kept_worker_runs_its_own_bundle_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVES_ENV, BUNDLE)
    monkeypatch.delenv(RETAINED_ENV, raising=False)
    assert not left_to_another(BUNDLE)
    assert left_to_another("bbbbbbbbbbbb")
    assert left_to_another(None)


def _run(store: MemoryStore, spec_version: str, status: RunStatus, run_id: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store.create_run(
        Run(
            run_id=run_id,
            flow="with-a-subflow",
            flow_version=spec_version,
            params={"n": 1},
            status=status,
            created_at=now,
        )
    )


def test_live_bundles_are_those_unfinished_runs_use() -> None:
    store = MemoryStore()
    old = store.put_flow(with_bundle(with_subflow.spec, "aaaaaaaaaaaa"))
    done = store.put_flow(with_bundle(with_subflow.spec, "bbbbbbbbbbbb"))
    current = store.put_flow(with_bundle(with_subflow.spec, BUNDLE), deploy=True)
    _run(store, old, RunStatus.RUNNING, "r-old")
    _run(store, done, RunStatus.SUCCEEDED, "r-done")
    _run(store, current, RunStatus.RUNNING, "r-now")
    assert live_bundles(store, store, ["with-a-subflow"]) == {"aaaaaaaaaaaa", BUNDLE}


def test_the_digest_covers_the_folders_code_and_data_not_build_files(tmp_path: Path) -> None:
    flow = tmp_path / "f.py"
    flow.write_text("x = 1\n")
    first = code_digest([flow])
    (tmp_path / "requirements.txt").write_text("requests\n")  # the bundle's own pins cover it
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x.py").write_text("y = 2\n")
    assert code_digest([flow]) == first
    (tmp_path / "lookup.csv").write_text("a,b\n")
    assert code_digest([flow]) != first
