"""How a node's function is called: on the loop (async), in a worker thread abandoned on cancel
(sync), or in a worker process killed on cancel (``executor="process"``). ``invoker`` builds the
call once, when the plan is compiled."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

from .._errors import attempt_timed_out
from .context import call_within, held

Invoke = Callable[..., Awaitable[Any]]


Key = tuple[str, str, int | None]  # run id, node, map item
_RUNNING: dict[Key, threading.Event] = {}
"""The threads of sync nodes still running, by run, node and item: set when the thread ends.
A thread whose attempt timed out is abandoned (it cannot be killed) and stays here until it
returns, so that the node's next attempt waits for it (``thread_done``)."""


async def _in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    here = held()  # the thread inherits the attempt's context (anyio copies it)
    bound = functools.partial(fn, *args, **kwargs)
    if here is None:
        return await anyio.to_thread.run_sync(bound, abandon_on_cancel=True)
    key, ended = (here[0], here[2], here[4]), threading.Event()
    _RUNNING[key] = ended

    def tracked() -> Any:
        try:
            return bound()
        finally:
            ended.set()
            if _RUNNING.get(key) is ended:
                del _RUNNING[key]

    return await anyio.to_thread.run_sync(tracked, abandon_on_cancel=True)


async def thread_done(run_id: str, node: str, item: int | None) -> bool:
    """Wait until the thread of a sync node's previous attempt has returned (an attempt that
    timed out abandoned it); return whether there was one to wait for."""
    ended = _RUNNING.get((run_id, node, item))
    if ended is None or ended.is_set():
        return False
    await anyio.to_thread.run_sync(ended.wait, abandon_on_cancel=True)
    return True


def still_running(run_id: str) -> list[str]:
    """The sync nodes of run ``run_id`` whose threads are still running (abandoned), as
    ``node`` or ``node[item]``."""
    return sorted(
        node if item is None else f"{node}[{item}]"
        for (run, node, item), ended in list(_RUNNING.items())
        if run == run_id and not ended.is_set()
    )


def _ready() -> None:
    """Nothing: run in a worker process, it makes sure one has started."""


async def _in_process(
    fn: Callable[..., Any], timeout: float | None, attempts: int, /, *args: Any, **kwargs: Any
) -> Any:
    # optional: anyio.to_process pulls in subprocess machinery; imported on first use
    from anyio import to_process

    here = held()  # what flowrt.current() answers in the worker process
    call = functools.partial(call_within, here, functools.partial(fn, *args, **kwargs))
    # A worker's start-up (a second, cold) is not the function's time: start one first, then
    # the timeout bounds the call in that warm worker (anyio keeps idle workers for reuse).
    await to_process.run_sync(_ready, cancellable=True)
    if timeout is None:
        return await to_process.run_sync(call, cancellable=True)
    with anyio.move_on_after(timeout):  # a timed-out worker is killed
        return await to_process.run_sync(call, cancellable=True)
    node, attempt = (here[2], here[3]) if here else ("?", 0)
    raise attempt_timed_out(node, attempt, attempts, timeout)


class Remote:
    """A node's function as an ``Executor`` receives it: called with the node's arguments, it
    calls ``fn`` with ``flowrt.current()`` answering for the attempt (``held``, read when the
    attempt called it). Picklable when ``fn`` is; ``node`` names the node, ``fn`` is the
    function itself (for messages that name its parameters)."""

    __slots__ = ("fn", "held")

    def __init__(self, held: Any, fn: Callable[..., Any]) -> None:
        self.held, self.fn = held, fn

    @property
    def node(self) -> str | None:
        """The node's name (None outside an attempt)."""
        return None if self.held is None else str(self.held[2])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_within(self.held, self.fn, *args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Remote, (self.held, self.fn))


async def _on_executor(executor: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    # What flowrt.current() answers where the executor runs fn: read now, from the attempt.
    remote = Remote(held(), fn)
    return await executor.call(remote, *args, **kwargs)


def invoker(
    fn: Callable[..., Any],
    is_async: bool,
    executor: Any,
    timeout: float | None = None,
    attempts: int = 1,
) -> Invoke:
    """``fn`` as a coroutine function called the node's way; a process node applies the
    attempt's ``timeout`` itself (of ``attempts`` attempts), once its worker has started."""
    if is_async:
        return fn
    if not isinstance(executor, str):  # an Executor object: the attempt's timeout cancels it
        return functools.partial(_on_executor, executor, fn)
    if executor == "process":
        return functools.partial(_in_process, fn, timeout, attempts)
    return functools.partial(_in_thread, fn)


async def call_any(fn: Callable[..., Any], arg: Any) -> Any:
    """Call ``fn(arg)``: awaited if it is async, in a worker thread if not."""
    if inspect.iscoroutinefunction(fn):
        return await fn(arg)
    return await anyio.to_thread.run_sync(fn, arg, abandon_on_cancel=True)
