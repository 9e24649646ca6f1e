"""`python -m emulators scheduler STATE_DIR`: the long-running helpers of the local stack."""

from __future__ import annotations

import sys

from emulators._scheduler import main

if len(sys.argv) < 3 or sys.argv[1] != "scheduler":
    sys.exit("usage: python -m emulators scheduler STATE_DIR")
main(sys.argv[2:])
