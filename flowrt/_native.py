"""The event loop's own structured task group and clock, for the per-node hot path.

anyio's task groups wrap these same primitives with per-task bookkeeping that costs more than a
whole node should; flowrt's scheduler spawns one task per node, so it uses ``asyncio.TaskGroup``
or a trio nursery directly. Both are structured (children never outlive the block, cancellation
and errors propagate) and anyio cancel scopes work inside them as in anyio's own groups.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

Spawn = Callable[..., None]


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def clock() -> Callable[[], float]:
    """The running loop's clock (what ``anyio.current_time()`` reads), without the per-call
    backend lookup."""
    if _on_asyncio():
        loop = asyncio.get_running_loop()
        if type(loop).time is asyncio.BaseEventLoop.time:
            return time.monotonic  # what that method returns, without a Python-level call
        return loop.time
    import trio

    return trio.current_time


def checkpoint() -> Callable[[], Coroutine[Any, Any, None]]:
    """A zero-argument coroutine function that yields to the running loop once."""
    if _on_asyncio():
        return functools.partial(asyncio.sleep, 0)
    import trio

    return trio.lowlevel.checkpoint


@asynccontextmanager
async def task_group() -> AsyncIterator[Spawn]:
    """A structured task group of the running loop; yields ``spawn(async_fn, *args)``."""
    if _on_asyncio():
        async with asyncio.TaskGroup() as group:

            def spawn(fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
                group.create_task(fn(*args))

            yield spawn
    else:
        import trio

        async with trio.open_nursery() as nursery:
            yield nursery.start_soon


@asynccontextmanager
async def alongside(fn: Callable[[], Coroutine[Any, Any, Any]]) -> AsyncIterator[None]:
    """Run ``fn()`` as a child task while the block runs; cancel it when the block ends."""
    if _on_asyncio():
        async with asyncio.TaskGroup() as group:
            task = group.create_task(fn())
            try:
                yield
            finally:
                task.cancel()
    else:
        import trio

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fn)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
