"""Fixtures come from kumoflow's own pytest plugin (`-p orchestrator.testing.plugin` in
pyproject's addopts), the same one users enable: `--backend memory|emulator|all`."""
