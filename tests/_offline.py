"""Deploy tests without a package index: a resolver that pins each requirement to the version
installed here (URL requirements kept as they are), and a check for the tests that do ask the
index (they skip, saying why, where none answers)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from orchestrator.cloud import ARCHIVE, Requirements, Target, write_bundle

INDEX = "https://pypi.org/simple/pip/"


def offline_resolve(requirements: Requirements, target: Target) -> list[str]:
    del target
    pins = []
    for line in requirements.lines:
        req = Requirement(line)
        if req.url:
            pins.append(f"{req.name} @ {req.url}")
            continue
        try:
            pins.append(f"{req.name}=={metadata.version(req.name)}")
        except metadata.PackageNotFoundError:
            pins.append(str(req))
    return sorted(pins)


def seed_lock(paths: Sequence[str], out: Path) -> None:
    """Resolve `paths`' bundle offline into `out`, so a CLI deploy there finds the lock."""
    out.mkdir(parents=True, exist_ok=True)
    write_bundle([Path(p).resolve() for p in paths], out / ARCHIVE, offline_resolve)


def index_unreachable() -> str | None:
    """Why the package index cannot be asked, or None when it answers."""
    try:
        with urllib.request.urlopen(INDEX, timeout=10):
            return None
    except (OSError, urllib.error.URLError) as e:
        return f"no package index reachable ({INDEX}: {e})"
