"""Runs keep their code across a redeploy: a worker per live code bundle.

A deploy pins each flow to its code bundle (FlowSpec.bundle: the digest of the flow's folder as
shipped), and a run's task requests carry that bundle (the `kumoflow_code` attribute). When a
deploy replaces a bundle that still has runs going, the old bundle keeps a task worker of its
own, whose push subscription takes only that bundle's requests, and the current worker leaves
them to it (KUMOFLOW_RETAINED_CODE). Each later deploy stops the kept workers whose runs have
all ended. Why this over the alternatives: Cloud Run revision tags would need the Run Admin API
to rewrite the traffic of a service Cloud Functions owns (its next deploy resets it), and a
drain would hold new runs back behind old ones; a worker per live bundle is plain Terraform in
the cloud (infra/functions.tf "retained") and a process here, and costs nothing once idle.

On the stack a bundle is a snapshot of the flow's folder under the state folder, so the code a
run started on stays on disk however the user edits the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from orchestrator import emulators
from orchestrator.contracts import FlowSpec, Run, flow_version
from orchestrator.ports import FlowStore, StateStore
from orchestrator.runtime import RETAINED_ENV, code_digest, code_files

PAGE_RUNS = 500  # runs read per page when looking for the bundles still in use


def with_bundle(spec: FlowSpec, bundle: str, moved: tuple[Path, Path] | None = None) -> FlowSpec:
    """`spec` and its subflows pinned to `bundle` (the subflows' versions change with it);
    `moved` = (folder, snapshot): sources under the folder are read from the snapshot."""
    children = {v: with_bundle(s, bundle, moved) for v, s in spec.subflows.items()}
    renamed = {v: flow_version(s) for v, s in children.items()}
    nodes = tuple(
        n.model_copy(update={"subflow": renamed[n.subflow]}) if n.subflow else n for n in spec.nodes
    )
    source = spec.source
    if moved is not None and source.path is not None:
        folder, root = moved
        path = Path(source.path)
        if path.is_relative_to(folder):
            source = source.model_copy(update={"path": str(root / path.relative_to(folder))})
    return spec.model_copy(
        update={
            "bundle": bundle,
            "source": source,
            "nodes": nodes,
            "subflows": {renamed[v]: s for v, s in children.items()},
        }
    )


def snapshot(state_dir: Path, flow_file: Path) -> tuple[str, Path]:
    """(digest, folder) of the bundle of `flow_file`'s folder, copied under `state_dir` once
    (written beside and renamed, so a crash leaves no half snapshot)."""
    files = list(code_files(flow_file))
    digest = code_digest([flow_file])
    root = state_dir / "code" / digest
    if not root.exists():
        tmp = root.with_name(f"{digest}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for arc, path in files:
            (tmp / arc).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, tmp / arc)
        with contextlib.suppress(OSError):  # another deploy renamed the same bytes first
            tmp.rename(root)
        shutil.rmtree(tmp, ignore_errors=True)
    return digest, root


def live_bundles(flows: FlowStore, state: StateStore, names: Iterable[str]) -> set[str]:
    """The bundles that runs of the flows `names` (and their subflows) still run on."""
    found: set[str] = set()
    for name in names:
        for run in _all_runs(state, name):
            if run.status.terminal:
                continue
            spec = flows.get_flow(run.flow_version)
            if spec is not None and spec.bundle is not None:
                found.add(spec.bundle)
        for spec in _deployed_subflows(flows, name):
            found |= live_bundles(flows, state, [spec.name])
    return found


def _all_runs(state: StateStore, name: str) -> Iterator[Run]:
    """Every run of flow `name`, newest first, a page at a time."""
    before = None
    while True:
        page = state.list_runs(flow=name, limit=PAGE_RUNS, before=before)
        yield from page
        if len(page) < PAGE_RUNS:
            return
        before = page[-1].created_at


def _deployed_subflows(flows: FlowStore, name: str) -> list[FlowSpec]:
    version = flows.latest_version(name)
    spec = flows.get_flow(version) if version else None
    return list(spec.subflows.values()) if spec else []


def _kept_file(config: emulators.StackConfig) -> Path:
    return config.state_dir / "code" / "retained.json"


def kept(config: emulators.StackConfig) -> dict[str, str]:
    """The kept workers' bundles: digest -> the flow it was kept for."""
    path = _kept_file(config)
    return json.loads(path.read_text()) if path.exists() else {}


def retained_env(config: emulators.StackConfig) -> dict[str, str]:
    """What the current task worker must know of the kept ones (`dev up` passes it too)."""
    return {RETAINED_ENV: ",".join(sorted(kept(config)))}


def worker_name(bundle: str) -> str:
    return f"task-worker-{bundle}"


def keep(config: emulators.StackConfig, wanted: dict[str, str]) -> None:
    path = _kept_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(wanted.items())), indent=2))
