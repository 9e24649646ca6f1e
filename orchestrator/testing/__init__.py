"""The public seam for tests of flows: an in-memory runtime, a clock that skips time, and one
way to run a flow in memory or on the local emulator stack and look at what happened.

Enable the pytest fixtures with one line (conftest.py or pyproject's addopts):
`-p orchestrator.testing.plugin`; then take `backend` (parametrized by `--backend
memory|emulator|all`), `memory_backend` or `stack_env` in a test.
"""

from orchestrator.adapters import VirtualClock
from orchestrator.runtime import memory_runtime
from orchestrator.testing._backends import Backend, MemoryBackend, Outcome, StackBackend
from orchestrator.testing._stack import TEST_STACK_ENV, stack_env, stack_for_tests

__all__ = [
    "TEST_STACK_ENV",
    "Backend",
    "MemoryBackend",
    "Outcome",
    "StackBackend",
    "VirtualClock",
    "memory_runtime",
    "stack_env",
    "stack_for_tests",
]
