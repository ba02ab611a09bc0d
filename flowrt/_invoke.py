"""How a node's function is called: on the loop (async), in a worker thread abandoned on cancel
(sync), or in a worker process killed on cancel (``executor="process"``). ``invoker`` builds the
call once, when the plan is compiled."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread

from ._context import call_within, fields_from

Invoke = Callable[..., Awaitable[Any]]


async def _in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # What flowrt.current() answers in the thread: read now from the calling attempt or item
    # (an abandoned thread must not see the attempt after it).
    bound = functools.partial(call_within, fields_from(sys._getframe(1)), fn, *args, **kwargs)
    return await anyio.to_thread.run_sync(bound, abandon_on_cancel=True)


async def _in_process(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # optional: anyio.to_process pulls in subprocess machinery; imported on first use
    from anyio import to_process

    here = fields_from(sys._getframe(1))  # what flowrt.current() answers in the worker process
    call = functools.partial(call_within, here, functools.partial(fn, *args, **kwargs))
    return await to_process.run_sync(call, cancellable=True)


def invoker(fn: Callable[..., Any], is_async: bool, executor: str) -> Invoke:
    """``fn`` as a coroutine function called the node's way."""
    if is_async:
        return fn
    if executor == "process":
        return functools.partial(_in_process, fn)
    return functools.partial(_in_thread, fn)


async def call_any(fn: Callable[..., Any], arg: Any) -> Any:
    """Call ``fn(arg)``: awaited if it is async, in a worker thread if not."""
    if inspect.iscoroutinefunction(fn):
        return await fn(arg)
    return await anyio.to_thread.run_sync(fn, arg, abandon_on_cancel=True)
