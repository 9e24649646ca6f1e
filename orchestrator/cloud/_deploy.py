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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.cloud._bundle import PACKAGE, TARGET, Resolve, pip_resolve, write_bundle
from orchestrator.cloud._dashboard import Dashboard, dashboard_tfvars
from orchestrator.cloud._limits import refuse_long_tasks
from orchestrator.cloud._project import project_store
from orchestrator.cloud._wiring import tfvars, wiring
from orchestrator.contracts import FlowSpec, describe_trigger, flow_version
from orchestrator.errors import KumoflowError
from orchestrator.ports import FlowStore

INFRA = PACKAGE / "infra"  # the repository's infra/, shipped in the wheel
ARCHIVE = "function-source.zip"
PLAN = "kumoflow.tfplan"
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

    def to_json(self) -> dict[str, Any]:
        return {
            "target": "gcp",
            "out": str(self.out),
            "project": self.project,
            "region": self.region,
            "flows": self.flows,
            "triggers": self.triggers,
            "bundle": {"bytes": self.bundle_bytes, "dependencies": self.dependencies},
            "commands": [" ".join(c) for c in self.commands],
            "applied": self.applied,
            "registered": self.registered,
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
) -> GcpDeploy:
    """Write the Terraform root module for `specs` (compiled from `paths`) into `out`, with
    the dashboard behind IAP when `dashboard` is given, and a secret for each secret field
    of the blocks the flows load and of `blocks` (KIND/NAME);
    `resolve` pins the bundle's requirements for the functions' runtime."""
    variables = {
        **tfvars(specs, project=project, region=region, source_archive=ARCHIVE, blocks=blocks),
        **dashboard_tfvars(dashboard),  # checked before anything is written
        # The runtime the bundle's requirements are resolved for.
        "python_runtime": TARGET.runtime,
    }
    out.mkdir(parents=True, exist_ok=True)
    for tf in sorted(INFRA.glob("*.tf")):
        _write(out / tf.name, tf.read_text())
    _write(out / "wiring.json", wiring_json())
    bundle = write_bundle([Path(p).resolve() for p in paths], out / ARCHIVE, resolve, specs)
    _write(out / "terraform.tfvars.json", json.dumps(variables, indent=2, sort_keys=True) + "\n")
    versions = {s.name: flow_version(s) for s in sorted(specs, key=lambda s: s.name)}
    _write(out / "flows.json", json.dumps(versions, indent=2) + "\n")
    chdir = f"-chdir={out}"
    return GcpDeploy(
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
    store: FlowStore | None = None,
    dashboard: Dashboard | None = None,
    blocks: Sequence[str] = (),
    resolve: Resolve = pip_resolve,
) -> GcpDeploy:
    """Render; with `apply`, run terraform and register the flows (Firestore exists then)."""
    from orchestrator.local import flows_in

    flows = [f for p in paths for f in flows_in(p)]  # one bad flow deploys nothing
    refuse_long_tasks((f.spec, f.functions()) for f in flows)
    specs = [f.spec for f in flows]
    done = render(
        paths,
        specs,
        project=project,
        region=region,
        out=out or default_out(project),
        dashboard=dashboard,
        blocks=blocks,
        resolve=resolve,
    )
    done.triggers = {s.name: [describe_trigger(t) for t in s.triggers] for s in specs}
    if not apply:
        return done
    if store is None:
        if shutil.which("terraform") is None:
            raise KumoflowError(
                "--apply needs terraform on PATH (>= 1.5); or run the printed commands yourself"
            )
        store = project_store(project)  # checks Application Default Credentials first
    for command in done.commands:
        code = runner(command)
        if code != 0:
            raise KumoflowError(
                f"`{' '.join(command)}` exited with {code}; nothing was registered. Fix it "
                "and deploy again (unchanged resources are left as they are)"
            )
    done.applied = True
    done.flows = {s.name: store.put_flow(s, deploy=True) for s in specs}
    done.registered = True
    return done


def default_out(project: str) -> Path:
    return Path(".kumoflow") / "gcp" / project
