"""`python -m orchestrator.emulators scheduler DIR`: the local stack's long-running helpers."""

from __future__ import annotations

import sys

from ._scheduler import main

if len(sys.argv) < 3 or sys.argv[1] != "scheduler":
    sys.exit("usage: python -m orchestrator.emulators scheduler STATE_DIR")
main(sys.argv[2:])
