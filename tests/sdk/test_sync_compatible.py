"""sync_compatible: sync callers get the value, async callers the coroutine."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator import sync_compatible


@sync_compatible
async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def test_sync_code_gets_the_value() -> None:
    assert double(3) == 6


def test_async_code_gets_a_coroutine_to_await() -> None:
    async def main() -> int:
        pending = double(4)
        assert asyncio.iscoroutine(pending)
        return await pending  # type: ignore[no-any-return]

    assert asyncio.run(main()) == 8


def test_forced_sync_inside_a_running_loop() -> None:
    async def main() -> int:
        return double(5, _sync=True)  # type: ignore[call-arg]

    assert asyncio.run(main()) == 10


def test_only_async_functions() -> None:
    with pytest.raises(TypeError, match="async def"):
        sync_compatible(lambda: 1)  # type: ignore[arg-type]
