"""Finding a flow from a CLI target: `path/to/file.py:flow` or `package.module:flow`."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from orchestrator.errors import KumoflowError


def load_module(spec: str) -> Any:
    if spec.endswith(".py") or "/" in spec or Path(spec).is_file():
        path = Path(spec).resolve()
        if not path.is_file():
            raise KumoflowError(f"no such file: {spec}")
        folder = str(path.parent)
        if folder not in sys.path:  # as `python file.py` would: siblings import each other
            sys.path.insert(0, folder)
        spec = path.stem
    elif "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: modules under the cwd
    try:
        return importlib.import_module(spec)
    except ImportError as e:
        raise KumoflowError(f"cannot import {spec!r}: {e}") from e


def load_flow(target: str) -> Any:
    from orchestrator.sdk._flow import Flow

    module_spec, sep, name = target.rpartition(":")
    if not sep or not module_spec or not name:
        raise KumoflowError(
            f"target {target!r} should look like path/to/file.py:flow or package.module:flow"
        )
    module = load_module(module_spec)
    found: Any = module
    for part in name.split("."):  # `pipeline.run`: a flow defined as a method, bound
        found = getattr(found, part, None)
    if not isinstance(found, Flow):
        flows = sorted(k for k, v in vars(module).items() if isinstance(v, Flow))
        raise KumoflowError(
            f"{module_spec} has no @flow named {name!r}; flows there: {', '.join(flows) or 'none'}"
        )
    return found
