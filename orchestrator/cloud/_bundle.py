"""The function source bundle: kumoflow's runtime, the user's flow code and requirements pinned
for the functions' runtime, zipped deterministically (same inputs, same bytes: an unchanged
deploy rebuilds nothing).

Layout (what Cloud Run functions' Python buildpack expects at the root):
  main.py                 re-exports the targets of functions/main.py
  requirements.txt        kumoflow's `runtime` extra (not the CLI, dashboard and local stack
                          its full install brings) and the flows' own (requirements.txt and
                          pyproject.toml beside them), resolved for TARGET, not for this machine
  orchestrator/           kumoflow's runtime: not the CLI, dashboard, local stack or deploy code,
                          with deployed-flows.json: the deployed flows' compiled specs, which the
                          run starter registers on first use when Firestore lacks them
  <flow folder>/...       the user's modules, packages and their data files, importable by the
                          names the flows were compiled with (FlowSpec.source.module)

Pins are resolved by pip for the target's Python and platform without installing anything,
preferring the versions installed here (the ones the flows were tried with), and kept in
LOCK beside the bundle so a redeploy of the same inputs neither asks the index nor changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from orchestrator.contracts import FlowSpec
from orchestrator.errors import KumoflowError
from orchestrator.runtime import MANIFEST, code_files, tree_files

PACKAGE = Path(__file__).resolve().parents[1]  # orchestrator/
# What the functions never import (tests/cli/test_bundle.py imports their entry points without
# it): the CLI, the dashboard, the local stack, the pytest plugin and the deploy code itself.
NOT_SHIPPED = frozenset(
    {"cli", "ui", "emulators", "testing", "local", "cloud", "infra", "__main__.py"}
)
RUNTIME_EXTRA = "runtime"  # pyproject's extra of what the functions import
SELF = "kumoflow"  # shipped as source in the bundle: never a requirement of it
LOCK = "requirements.lock.json"
MAIN = (
    '"""Cloud Run functions entry points: the targets of kumoflow\'s functions/main.py."""\n\n'
    "from orchestrator.functions.main import (  # noqa: F401\n"
    "    dead_letter_sink,\n    orchestrator,\n    resume_callback,\n    run_starter,\n"
    "    sweeper,\n    task_worker,\n"
    ")\n"
)
_EPOCH = (1980, 1, 1, 0, 0, 0)
# Where the flows' packages come from, carried into the bundle's requirements.txt (a local
# --find-links folder would not exist where the functions build).
_INDEX_OPTIONS = ("--index-url", "--extra-index-url", "-i ")


@dataclass(frozen=True)
class Target:
    """Where the functions run: infra/variables.tf's python_runtime (python312) on Cloud Run's
    Ubuntu 22.04 base image (glibc 2.35), x86_64."""

    python: str = "3.12"
    glibc_minor: int = 35
    arch: str = "x86_64"

    @property
    def runtime(self) -> str:
        return "python" + self.python.replace(".", "")

    def environment(self) -> dict[str, str]:
        """PEP 508 marker values of the target (pip evaluates markers for this machine)."""
        return {
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "platform_machine": self.arch,
            "extra": "",
        }

    def pip_args(self) -> list[str]:
        # pip widens manylinux2014 only to the older legacy tags: name every glibc up to ours.
        tags = [f"manylinux_2_{m}_{self.arch}" for m in range(self.glibc_minor, 16, -1)]
        tags += [f"manylinux2014_{self.arch}", f"manylinux2010_{self.arch}"]
        cp = "cp" + self.python.replace(".", "")
        return [
            "--only-binary=:all:",
            *(arg for tag in tags for arg in ("--platform", tag)),
            "--python-version", self.python,
            "--implementation", "cp",
            *(arg for abi in (cp, "abi3", "none") for arg in ("--abi", abi)),
        ]  # fmt: skip


TARGET = Target()


@dataclass(frozen=True)
class Requirements:
    """What the bundle needs resolved: requirement lines and the index options they came with."""

    lines: tuple[str, ...]
    options: tuple[str, ...] = ()


# Resolves requirements for a target into pinned lines (`name==version`, or `name @ url`).
Resolve = Callable[[Requirements, Target], list[str]]


@dataclass(frozen=True)
class Bundle:
    path: Path
    size: int  # bytes of the zip
    pins: tuple[str, ...]  # requirements.txt's resolved lines: the dependencies installed


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements() -> list[str]:
    """kumoflow's `runtime` extra: from the pyproject.toml of the source tree the bundle ships
    when there is one (an editable install's metadata lags its pyproject), else from the
    installed distribution's metadata."""
    source = PACKAGE.parent / "pyproject.toml"
    if source.is_file():
        project = tomllib.loads(source.read_text()).get("project", {})
        if _canon(str(project.get("name", ""))) == SELF:
            return list(project["optional-dependencies"][RUNTIME_EXTRA])
    out = []
    for raw in metadata.requires(SELF) or []:
        req = Requirement(raw)
        marker = req.marker
        # The extra's own lines: true for "runtime", false without an extra.
        if (
            marker
            and marker.evaluate({"extra": RUNTIME_EXTRA})
            and not marker.evaluate({"extra": ""})
        ):
            out.append(f"{req.name}{req.specifier}")
    return out


def _requirement_lines(path: Path, seen: set[Path]) -> tuple[list[str], list[str]]:
    """A requirements file's requirements and index options (following -r)."""
    if path in seen:
        return [], []
    seen.add(path)
    lines: list[str] = []
    options: list[str] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            more = path.parent / line.split(None, 1)[1]
            sub_lines, sub_options = _requirement_lines(more.resolve(), seen)
            lines += sub_lines
            options += sub_options
        elif line.startswith(_INDEX_OPTIONS):
            options.append(line)
        elif line.startswith("-"):
            raise KumoflowError(
                f"{path}:{number}: {line!r} cannot go into a function's requirements: give "
                "requirements (PEP 508), -r FILE and index options only"
            )
        else:
            lines.append(line.split(" --hash", 1)[0].strip())
    return lines, options


def _pyproject(folder: Path) -> Path | None:
    """The nearest pyproject.toml at or above the flow's folder, unless it is kumoflow's own."""
    for parent in (folder, *folder.parents):
        candidate = parent / "pyproject.toml"
        if candidate.is_file():
            project = tomllib.loads(candidate.read_text()).get("project", {})
            return None if _canon(str(project.get("name", ""))) == SELF else candidate
    return None


def user_requirements(flow_files: Sequence[Path]) -> Requirements:
    """The flows' own dependencies: requirements.txt beside each flow file and the nearest
    pyproject.toml's [project] dependencies; kumoflow itself dropped (the bundle ships it)."""
    lines: list[str] = []
    options: list[str] = []
    seen: set[Path] = set()
    for flow_file in flow_files:
        reqs = flow_file.parent / "requirements.txt"
        if reqs.is_file():
            more, opts = _requirement_lines(reqs.resolve(), seen)
            lines += more
            options += opts
        pyproject = _pyproject(flow_file.parent)
        if pyproject is not None and pyproject not in seen:
            seen.add(pyproject)
            project = tomllib.loads(pyproject.read_text()).get("project", {})
            lines += [str(d) for d in project.get("dependencies", [])]
    kept = []
    for line in lines:
        try:
            name = _canon(Requirement(line).name)
        except InvalidRequirement as e:
            raise KumoflowError(f"the flows' requirement {line!r} is not PEP 508: {e}") from e
        if name != SELF:
            kept.append(line)
    return Requirements(tuple(dict.fromkeys(kept)), tuple(dict.fromkeys(options)))


def bundle_requirements(flow_files: Sequence[Path], target: Target = TARGET) -> Requirements:
    """kumoflow's runtime requirements and the flows', those whose markers fit `target`."""
    user = user_requirements(flow_files)
    env = target.environment()
    kept = []
    for line in (*runtime_requirements(), *user.lines):
        marker = Requirement(line).marker
        if marker is None or marker.evaluate(env):
            kept.append(line)
    return Requirements(tuple(dict.fromkeys(kept)), user.options)


def installed_pins() -> list[str]:
    """`name==version` of every distribution installed here: the versions the flows were tried
    with, preferred where the target has them."""
    pins = {_canon(d.metadata["Name"]): d.version for d in metadata.distributions()}
    pins.pop(SELF, None)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def pip_resolve(requirements: Requirements, target: Target = TARGET) -> list[str]:
    """Resolve with pip for `target` (`pip install --dry-run --report`: nothing is installed),
    preferring the versions installed here; when those cannot all hold, whatever the index has."""
    with tempfile.TemporaryDirectory(prefix="kumoflow-resolve-") as tmp:
        reqs = Path(tmp) / "requirements.txt"
        lines = (*requirements.options, *requirements.lines)
        reqs.write_text("".join(f"{line}\n" for line in lines))
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("".join(f"{pin}\n" for pin in installed_pins()))
        base = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
            "--quiet", "--report", "-", "--disable-pip-version-check", "--no-input",
            # pip before 23.3 takes platform options only with --target (nothing lands there).
            "--target", str(Path(tmp) / "target"),
            *target.pip_args(), "-r", str(reqs),
        ]  # fmt: skip
        done = _pip([*base, "-c", str(constraints)])
        if done.returncode != 0:
            done = _pip(base)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-8:])
            raise KumoflowError(
                f"pip could not resolve the functions' requirements for {target.runtime} "
                f"(manylinux {target.arch}; wheels only: pip cannot build a source package "
                f"for another Python and platform); pin versions that publish such wheels:"
                f"\n{tail}"
            )
    return _pins(json.loads(done.stdout))


def _pip(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, check=False, timeout=600)


def _pins(report: dict[str, Any]) -> list[str]:
    pins = []
    for item in report.get("install", []):
        name = _canon(item["metadata"]["name"])
        if item.get("is_direct"):  # a URL requirement: no index knows it
            pins.append(f"{name} @ {item['download_info']['url']}")
        else:
            pins.append(f"{name}=={item['metadata']['version']}")
    return sorted(pins)


def locked_pins(
    requirements: Requirements, target: Target, lock: Path, resolve: Resolve
) -> list[str]:
    """`resolve`'s pins, kept in `lock` under a digest of what they were resolved from."""
    key = hashlib.sha256(
        json.dumps(
            [requirements.lines, requirements.options, target.pip_args(), installed_pins()]
        ).encode()
    ).hexdigest()
    if lock.is_file():
        kept = json.loads(lock.read_text())
        if kept.get("key") == key:
            return list(kept["pins"])
    pins = resolve(requirements, target)
    lock.write_text(json.dumps({"key": key, "pins": pins}, indent=2) + "\n")
    return pins


def _runtime_files() -> Iterable[tuple[str, Path]]:
    """kumoflow's runtime: its modules and the package data they read, minus NOT_SHIPPED."""
    for arc, path in tree_files(PACKAGE, PACKAGE.name):
        if arc.split("/")[1] not in NOT_SHIPPED:
            yield arc, path


def bundle_files(
    flow_files: Sequence[Path], requirements: Sequence[str], specs: Sequence[FlowSpec] = ()
) -> dict[str, bytes]:
    """The bundle's files by name; `requirements`: its requirements.txt's lines (index options,
    then the pins); `specs`: the deployed flows, which the run starter registers on first use
    when Firestore lacks them (a `terraform apply` without `kumoflow deploy --apply`)."""
    files: dict[str, bytes] = {"main.py": MAIN.encode()}
    for arc, path in _runtime_files():
        files[arc] = path.read_bytes()
    ordered = sorted(specs, key=lambda s: s.name)
    manifest = json.dumps([s.model_dump(mode="json") for s in ordered], sort_keys=True)
    files[f"{PACKAGE.name}/{MANIFEST}"] = manifest.encode()
    own = set(files)
    for flow_file in flow_files:
        for arc, path in code_files(flow_file):
            if arc in own or arc.split("/")[0] == PACKAGE.name:
                raise KumoflowError(
                    f"{path} would replace kumoflow's {arc} in the function bundle: rename it"
                )
            data = path.read_bytes()
            if files.setdefault(arc, data) != data:
                raise KumoflowError(f"two flow folders both define {arc}: deploy one of them")
    header = (
        f"# kumoflow's runtime and the flows' requirements, resolved for {TARGET.runtime} "
        f"(manylinux {TARGET.arch})\n"
    )
    files["requirements.txt"] = (header + "".join(f"{line}\n" for line in requirements)).encode()
    return dict(sorted(files.items()))


def write_bundle(
    flow_files: Sequence[Path],
    dest: Path,
    resolve: Resolve = pip_resolve,
    specs: Sequence[FlowSpec] = (),
) -> Bundle:
    """Write the zip to `dest` only when its bytes change (so mtimes say "unchanged" too)."""
    requirements = bundle_requirements(flow_files)
    pins = locked_pins(requirements, TARGET, dest.with_name(LOCK), resolve)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for arc, data in bundle_files(flow_files, (*requirements.options, *pins), specs).items():
            info = zipfile.ZipInfo(arc, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    data = buffer.getvalue()
    if not dest.exists() or dest.read_bytes() != data:
        dest.write_bytes(data)
    return Bundle(dest, len(data), tuple(pins))
