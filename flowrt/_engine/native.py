"""The event loop's own structured task group and clock, for the per-node hot path.

anyio's task groups wrap the loop's primitives with per-task bookkeeping that costs more than a
whole node should; flowrt's scheduler spawns one task per node, so on asyncio it uses
``LoopGroup`` (tasks straight from the loop, structured like ``asyncio.TaskGroup``) and on trio a
nursery. Both are structured (children never outlive the block, cancellation and errors
propagate) and anyio cancel scopes work inside them as in anyio's own groups.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import sys
import time
from asyncio.events import _get_running_loop
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

EAGER = sys.version_info >= (3, 12)
"""Whether ``LoopGroup`` starts its tasks eagerly (``asyncio.Task(eager_start=True)``)."""


def _eager(coro: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
    """A task of ``coro`` on ``loop``, started at once (Python 3.12+)."""
    return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]


Spawn = Callable[[Callable[[Any], Coroutine[Any, Any, Any]], Any], None]  # spawn(async_fn, arg)


def on_asyncio() -> bool:
    """Whether the running loop (the caller is async code) is asyncio's or uvloop's, not
    trio's: the only other loop flowrt runs on. Where trio was never imported, no question is
    asked (asking costs a system call on 3.11: asyncio checks the process id)."""
    return "trio" not in sys.modules or _get_running_loop() is not None


Tools = tuple[Callable[[], float], Callable[[], Coroutine[Any, Any, None]]]
_CHECKPOINT = functools.partial(asyncio.sleep, 0)
ASYNCIO_TOOLS: Tools = (time.monotonic, _CHECKPOINT)
"""``loop_tools()`` on asyncio (a run whose checkpoint is this one runs on asyncio)."""


def loop_tools() -> Tools:
    """``clock()`` (what durations and trace times are read from) and ``checkpoint()`` of the
    running loop. On asyncio the clock is ``time.monotonic`` on every loop: what asyncio's own
    loop reads, and not uvloop's ``loop.time()``, which libuv caches once per loop turn to the
    millisecond (a node's duration read from it is 0.0). On trio it is trio's, so that trio's
    ``MockClock`` rules a test's times."""
    if on_asyncio():
        return ASYNCIO_TOOLS
    # optional: trio is only imported when the running loop is trio's
    import trio

    return trio.current_time, trio.lowlevel.checkpoint


class LoopGroup:
    """A structured group of tasks on the running asyncio loop, for children that catch their
    own failures (a flowrt node task never lets an Exception out).

    What ``asyncio.TaskGroup`` guarantees, for less: no task outlives ``wait()``; cancelled
    while waiting, it cancels every task, waits for them, and re-raises the cancellation; a
    task that raises anyway (a BaseException, or a flowrt bug) cancels the others and is
    re-raised by ``wait()``. Unlike TaskGroup it adds no done callback per task: a task takes
    itself out of the group as it ends, so it is freed at once and its successors' objects
    reuse its memory (TaskGroup holds every finished task until a later loop turn).
    """

    __slots__ = ("_aborting", "_errors", "_idle", "_keys", "_loop", "_starting", "_tasks")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks: dict[int, asyncio.Task[None]] = {}  # by a key the task itself knows
        self._keys = itertools.count()
        self._idle: asyncio.Future[None] | None = None  # set when the last task ends
        self._errors: list[BaseException] = []
        self._aborting = False
        self._starting = False  # a task of the group is starting eagerly (3.12+)

    async def __aenter__(self) -> Spawn:
        return self.spawn

    async def __aexit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if error is not None:  # the block failed: stop the tasks, then let its error go on
            self.abort()
        await self.wait()

    def spawn(self, fn: Callable[[Any], Coroutine[Any, Any, Any]], arg: Any) -> None:
        """Start ``fn(arg)`` in a task of this group (one argument: no tuple kept per task).

        On Python 3.12+ the task starts eagerly: it runs at once, in the spawning call, up to
        its first wait (a node that never waits runs to its end without a loop turn). Not
        while another of the group's tasks is starting so (nested starts take a loop turn: the
        stack never grows with the graph), nor once the group is aborting (the task is
        cancelled before it runs any of its code)."""
        key = next(self._keys)
        if EAGER and not self._starting and not self._aborting:
            self._starting = True
            try:
                task = _eager(self._child(fn, arg, key), self._loop)
            finally:
                self._starting = False
        else:
            task = self._loop.create_task(self._child(fn, arg, key))
        if not task.done():  # an eager task factory (3.12+) may have run it to its end already
            self._tasks[key] = task
            if self._aborting:
                task.cancel()

    async def _child(
        self, fn: Callable[[Any], Coroutine[Any, Any, Any]], arg: Any, key: int
    ) -> None:
        try:
            await fn(arg)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._errors.append(exc)
            self.abort()
        finally:
            tasks = self._tasks
            tasks.pop(key, None)
            if not tasks:
                self._wake()

    def _wake(self) -> None:
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def abort(self) -> None:
        """Cancel every task of the group (and any it starts from now on)."""
        self._aborting = True
        current = asyncio.current_task()
        for task in self._tasks.values():
            if task is not current:
                task.cancel()
        self._wake()

    async def wait(self) -> None:
        """Return once every task has ended.

        Raises:
            CancelledError: the waiting task was cancelled (every task was cancelled too).
            BaseException: what a task raised (a BaseExceptionGroup for several).
        """
        cancelled: asyncio.CancelledError | None = None
        while self._tasks:
            if not self._aborting:
                self._idle = self._loop.create_future()
                try:
                    await self._idle
                except asyncio.CancelledError as exc:
                    cancelled = exc
                    self.abort()
                finally:
                    self._idle = None
            else:  # a task cancelled before it started never runs _child: wait on the tasks
                try:
                    await asyncio.wait(tuple(self._tasks.values()))
                except asyncio.CancelledError as exc:
                    cancelled = cancelled or exc  # cancelled again: keep waiting all the same
                self._tasks = {k: task for k, task in self._tasks.items() if not task.done()}
        # Raised from locals that are then dropped: the exception's traceback holds this frame,
        # which must not hold the exception back (a reference cycle only the collector frees).
        errors, self._errors = self._errors, []
        try:
            if errors:
                if len(errors) == 1:
                    raise errors[0]
                raise BaseExceptionGroup("flowrt tasks failed", errors)
            if cancelled is not None:
                raise cancelled
        finally:
            errors = cancelled = None  # type: ignore[assignment]


def task_group() -> AbstractAsyncContextManager[Spawn]:
    """A structured task group of the running loop; its block gets ``spawn(async_fn, arg)``."""
    return LoopGroup() if on_asyncio() else _nursery()


@asynccontextmanager
async def _nursery() -> AsyncIterator[Spawn]:
    # optional: trio is only imported when the running loop is trio's
    import trio

    async with trio.open_nursery() as nursery:
        yield nursery.start_soon


@asynccontextmanager
async def alongside(fn: Callable[[], Coroutine[Any, Any, Any]]) -> AsyncIterator[None]:
    """Run ``fn()`` as a child task while the block runs; cancel it when the block ends."""
    if on_asyncio():
        async with asyncio.TaskGroup() as group:
            task = group.create_task(fn())
            try:
                yield
            finally:
                task.cancel()
    else:
        # optional: trio is only imported when the running loop is trio's
        import trio

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fn)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
