"""Flows deployed by `terraform apply` alone: the function bundle ships the deployed flows'
compiled specs (MANIFEST, written by `kumoflow deploy`), and the run starter registers any of
them Firestore lacks before it matches an event, so no `kumoflow deploy --apply` is needed."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from orchestrator.contracts import FlowSpec, flow_version
from orchestrator.errors import KumoflowError
from orchestrator.runtime._runtime import Runtime

MANIFEST = "deployed-flows.json"  # beside the package in the bundle: orchestrator/MANIFEST
MANIFEST_ENV = "KUMOFLOW_FLOWS_MANIFEST"  # another location (tests, a custom build)
_SPECS = TypeAdapter(list[FlowSpec])


def manifest_path() -> Path:
    given = os.environ.get(MANIFEST_ENV)
    return Path(given) if given else Path(__file__).resolve().parents[2] / MANIFEST


def bundled_specs(path: Path) -> list[FlowSpec]:
    """The specs the bundle ships; none outside a bundle (a source checkout, the local stack)."""
    if not path.is_file():
        return []
    try:
        return _SPECS.validate_json(path.read_bytes())
    except ValidationError as e:
        # The deploy wrote it: a broken one is a broken deploy, not bad input to dead-letter.
        raise KumoflowError(f"{path} is not a list of flow specs; deploy again ({e})") from e


def register_bundled(rt: Runtime, path: Path | None = None) -> list[str]:
    """Register (as deployed) each bundled flow whose version Firestore lacks; returns the
    versions registered. Once a version is found, this instance asks no more (one read per
    flow per instance, not per event)."""
    added = []
    for spec in bundled_specs(path or manifest_path()):
        version = flow_version(spec)
        if version in rt.bundled:
            continue
        if rt.flows.get_flow(version) is None:
            # Content-addressed and idempotent: two instances racing register the same thing.
            rt.flows.put_flow(spec, deploy=True)
            added.append(version)
        rt.bundled.add(version)
    return added
