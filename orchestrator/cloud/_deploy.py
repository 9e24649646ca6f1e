"""`kumoflow deploy FILE... --target gcp`: a Terraform root module ready to apply.

It writes into `out`: infra/*.tf (copied), wiring.json (generated from the code), the function
source bundle (and requirements.lock.json, its resolved pins), terraform.tfvars.json (every
trigger of the files' flows: this deploy is the project's whole set), and flows.json (name ->
content hash of the DAG and its code). With `apply` it runs terraform init/plan/apply and then
registers the flows in the project's Firestore (content-addressed: an unchanged flow is the
same version; a changed one, its code included, is a new version, and running runs keep the
version they started with). Everything written is deterministic: redeploying unchanged files
rewrites identical bytes, so the plan is empty. A task that would outlive the task worker
function is refused before anything is written (_limits).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.cloud._bundle import PACKAGE, TARGET, Resolve, pip_resolve, write_bundle
from orchestrator.cloud._dashboard import Dashboard, dashboard_tfvars
from orchestrator.cloud._limits import refuse_long_tasks
from orchestrator.cloud._project import project_store
from orchestrator.cloud._wiring import tfvars, wiring
from orchestrator.contracts import FlowSpec, describe_trigger, flow_version
from orchestrator.errors import KumoflowError
from orchestrator.local import flows_in, limits_in, live_bundles, with_bundle
from orchestrator.ports import RecordStore
from orchestrator.runtime import LEASE_S, code_digest

INFRA = PACKAGE / "infra"  # the repository's infra/, shipped in the wheel
ARCHIVE = "function-source.zip"
PLAN = "kumoflow.tfplan"
CODE = "code"  # the deployed bundles' zips by code digest, for workers kept for their runs
CODE_RECORD = "code.json"  # this folder's current bundle and the kept ones
Runner = Callable[[Sequence[str]], int]


@dataclass
class GcpDeploy:
    out: Path
    project: str
    region: str
    flows: dict[str, str] = field(default_factory=dict)  # name -> version
    triggers: dict[str, list[str]] = field(default_factory=dict)  # name -> describe_trigger
    bundle_bytes: int = 0  # the function source zip's size
    dependencies: int = 0  # the packages its requirements.txt installs
    commands: list[list[str]] = field(default_factory=list)
    applied: bool = False
    registered: bool = False
    code: str = ""  # digest of the flows' code bundle (FlowSpec.bundle)
    # Earlier bundles kept with a worker of their own for the runs still on them; `checked`:
    # whether runs were read to decide (without --apply, every earlier one is kept).
    kept: list[str] = field(default_factory=list)
    checked: bool = False
    limits: dict[str, int] = field(default_factory=dict)  # concurrency key -> limit

    def to_json(self) -> dict[str, Any]:
        return {
            "target": "gcp",
            "out": str(self.out),
            "project": self.project,
            "region": self.region,
            "flows": self.flows,
            "triggers": self.triggers,
            "bundle": {"bytes": self.bundle_bytes, "dependencies": self.dependencies},
            "code": {"bundle": self.code, "kept": self.kept, "checked": self.checked},
            "commands": [" ".join(c) for c in self.commands],
            "applied": self.applied,
            "registered": self.registered,
            "limits": self.limits,
        }


def wiring_json() -> str:
    return json.dumps(wiring(), indent=2, sort_keys=True) + "\n"


def _write(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def render(
    paths: Sequence[str],
    specs: Sequence[FlowSpec],
    *,
    project: str,
    region: str,
    out: Path,
    dashboard: Dashboard | None = None,
    blocks: Sequence[str] = (),
    resolve: Resolve = pip_resolve,
    retained: dict[str, str] | None = None,
    limits: Mapping[str, int] | None = None,
) -> GcpDeploy:
    """Write the Terraform root module for `specs` (compiled from `paths`) into `out`, with
    the dashboard behind IAP when `dashboard` is given, and a secret for each secret field
    of the blocks the flows load and of `blocks` (KIND/NAME);
    `resolve` pins the bundle's requirements for the functions' runtime; `retained`: the
    earlier code bundles kept for their runs (digest -> zip, relative to `out`); `limits`: the
    concurrency limits the files declare (Terraform writes them as data: infra/limits.tf)."""
    variables = {
        **tfvars(specs, project=project, region=region, source_archive=ARCHIVE, blocks=blocks),
        **dashboard_tfvars(dashboard),  # checked before anything is written
        # The runtime the bundle's requirements are resolved for.
        "python_runtime": TARGET.runtime,
        "retained_code": dict(retained or {}),
        # Only when declared (infra's default is none): a deploy without limits writes the
        # same tfvars as before they existed.
        **({"concurrency_limits": dict(limits)} if limits else {}),
    }
    out.mkdir(parents=True, exist_ok=True)
    for tf in sorted(INFRA.glob("*.tf")):
        _write(out / tf.name, tf.read_text())
    _write(out / "wiring.json", wiring_json())
    bundle = write_bundle([Path(p).resolve() for p in paths], out / ARCHIVE, resolve, specs)
    code = {s.bundle for s in specs} - {None}
    if len(code) == 1:  # kept, so that a later deploy can keep a worker for its runs
        (out / CODE).mkdir(exist_ok=True)
        kept = out / CODE / f"{code.pop()}.zip"
        if not kept.exists() or kept.read_bytes() != (out / ARCHIVE).read_bytes():
            shutil.copyfile(out / ARCHIVE, kept)
    _write(out / "terraform.tfvars.json", json.dumps(variables, indent=2, sort_keys=True) + "\n")
    versions = {s.name: flow_version(s) for s in sorted(specs, key=lambda s: s.name)}
    _write(out / "flows.json", json.dumps(versions, indent=2) + "\n")
    chdir = f"-chdir={out}"
    return GcpDeploy(
        limits=dict(limits or {}),
        out=out,
        project=project,
        region=region,
        flows=versions,
        bundle_bytes=bundle.size,
        dependencies=len(bundle.pins),
        commands=[
            ["terraform", chdir, "init", "-input=false"],
            ["terraform", chdir, "plan", "-input=false", f"-out={PLAN}"],
            ["terraform", chdir, "apply", "-input=false", PLAN],
        ],
    )


def _run(command: Sequence[str]) -> int:
    return subprocess.run(list(command), check=False).returncode


def deploy_gcp(
    paths: Sequence[str],
    *,
    project: str,
    region: str,
    out: Path | None = None,
    apply: bool = False,
    runner: Runner = _run,
    store: RecordStore | None = None,
    dashboard: Dashboard | None = None,
    blocks: Sequence[str] = (),
    resolve: Resolve = pip_resolve,
) -> GcpDeploy:
    """Render; with `apply`, run terraform and register the flows (Firestore exists then)."""
    flows = [f for p in paths for f in flows_in(p)]  # one bad flow deploys nothing
    declared = limits_in(paths)
    refuse_long_tasks((f.spec, f.functions()) for f in flows)
    digest = code_digest([Path(p).resolve() for p in paths])
    specs = [with_bundle(f.spec, digest) for f in flows]
    out = out or default_out(project)
    if apply and store is None:
        if shutil.which("terraform") is None:
            raise KumoflowError(
                "--apply needs terraform on PATH (>= 1.5); or run the printed commands yourself"
            )
        store = project_store(project)  # checks Application Default Credentials first
    retained = retain(out, digest, [s.name for s in specs], store)
    done = render(
        paths,
        specs,
        project=project,
        region=region,
        out=out,
        dashboard=dashboard,
        blocks=blocks,
        resolve=resolve,
        retained=retained,
        limits=declared,
    )
    done.code, done.kept, done.checked = digest, sorted(retained), store is not None
    done.triggers = {s.name: [describe_trigger(t) for t in s.triggers] for s in specs}
    _write(out / CODE_RECORD, json.dumps({"current": digest, "kept": sorted(retained)}) + "\n")
    if not apply:
        return done
    assert store is not None
    for command in done.commands:
        code = runner(command)
        if code != 0:
            raise KumoflowError(
                f"`{' '.join(command)}` exited with {code}; nothing was registered. Fix it "
                "and deploy again (unchanged resources are left as they are)"
            )
    done.applied = True
    done.flows = {s.name: store.put_flow(s, deploy=True) for s in specs}
    for key, limit in declared.items():  # as applied; a raise hands slots to waiters (the
        # sweeper wakes them within a lease: this process has no bus of the project)
        store.set_limit(key, limit, datetime.now(UTC) + timedelta(seconds=LEASE_S))
    done.registered = True
    return done


def retain(out: Path, code: str, names: Sequence[str], store: RecordStore | None) -> dict[str, str]:
    """The earlier bundles of `out` to keep a worker for (digest -> zip, relative to `out`):
    those runs of the flows `names` still run on, read from `store`; without one, every
    earlier bundle (none is dropped on a guess). A bundle whose zip is gone cannot be kept."""
    record = out / CODE_RECORD
    earlier: dict[str, Any] = json.loads(record.read_text()) if record.exists() else {}
    candidates = {earlier.get("current"), *earlier.get("kept", [])} - {None, code}
    found = {c for c in candidates if (out / CODE / f"{c}.zip").exists()}
    if store is not None and found:
        found &= live_bundles(store, store, names)
    return {c: f"{CODE}/{c}.zip" for c in sorted(found)}


def default_out(project: str) -> Path:
    return Path(".kumoflow") / "gcp" / project
