"""``wf.stream()``: a run's events as an async iterator.

An async generator cannot own a task group across its ``yield``s: a consumer that leaves
``async for`` with ``break`` would leave the group's cancel scope open on its own stack (PEP 789).
So the run goes to a producer task that the ``EventStream`` owns and ends: it is cancelled when
the stream is closed (``aclose()``, ``async with``), when the stream is garbage-collected after a
``break``, and when the consumer is cancelled while waiting for an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .._models import Event
from .execute import Listener
from .planned import Plan
from .run import Environment, run

_producers: set[asyncio.Task[None]] = set()  # strong references while they run


def _spawn(fn: Callable[[], Awaitable[None]]) -> None:
    """Start ``fn`` as a task of the running event loop (asyncio or trio), outside any task group:
    its owner (the EventStream) cancels it through a cancel scope and waits for it on close."""
    context = contextvars.copy_context()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio
        # optional: trio is only imported when the running loop is trio's
        import trio

        trio.lowlevel.spawn_system_task(fn, context=context)
        return
    task: asyncio.Task[None] = loop.create_task(fn(), context=context)  # type: ignore[arg-type]
    _producers.add(task)
    task.add_done_callback(_producers.discard)


class _Producer:
    """What the producer task and the stream share. It holds no reference to the stream, so a
    stream dropped after ``break`` is collected (and cancels the run) while the run still goes."""

    __slots__ = ("error", "scope", "send", "stopped")

    def __init__(self, send: MemoryObjectSendStream[Event]) -> None:
        self.send = send
        self.scope = anyio.CancelScope()
        self.stopped = anyio.Event()
        self.error: BaseException | None = None

    def deliver(self, event: Event) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.send.send_nowait(event)  # fails only once the consumer has gone

    async def produce(
        self, plan: Plan, env: Environment, input: Any, timeout: float | None, run_id: str | None
    ) -> None:
        try:
            with self.scope, self.send:
                await run(plan, env, input, timeout=timeout, listener=self.deliver, run_id=run_id)
        except BaseException as exc:  # handed to the consumer; the producer ends quietly
            self.error = exc
        finally:
            self.stopped.set()

    def cancel(self) -> None:
        if not self.stopped.is_set():
            self.scope.cancel()


class EventStream:
    """The events of one run, as they happen: ``async for event in wf.stream(input)``.

    Leaving the loop early (``break``, an exception) cancels the run. ``async with
    wf.stream(input) as events`` or ``await events.aclose()`` also waits until every node has
    stopped; after a bare ``break`` the nodes are cancelled at once and stop at their next await.
    The last event is ``run.finished``, whose ``result`` is the RunResult.
    """

    def __init__(
        self,
        plan: Plan,
        env: Environment,
        input: Any,
        *,
        timeout: float | None,
        run_id: str | None = None,
        listener: Listener | None = None,
    ) -> None:
        # The plan is compiled by the caller: definition errors surface there, not here.
        if listener is not None:  # it hears the events before the stream does
            env = dataclasses.replace(env, listeners=(*env.listeners, listener))
        self._plan, self._env, self._input, self._timeout = plan, env, input, timeout
        self._run_id = run_id
        self._send, self._receive = anyio.create_memory_object_stream[Event](math.inf)
        self._producer: _Producer | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        if self._producer is None:
            self._producer = _Producer(self._send)
            produce = functools.partial(
                self._producer.produce, self._plan, self._env, self._input, self._timeout
            )
            _spawn(functools.partial(produce, self._run_id))
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._producer.error is not None:
                raise self._producer.error from None
            raise StopAsyncIteration from None
        except BaseException:
            self._producer.cancel()
            raise

    async def aclose(self) -> None:
        """Cancel the run if it is still going and wait until every node has stopped."""
        if self._producer is None:
            self._send.close()  # never started: the send side is still ours
        else:
            self._producer.cancel()
            with anyio.CancelScope(shield=True):
                await self._producer.stopped.wait()
        self._receive.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # A consumer that broke out of ``async for`` drops the stream: stop the run now.
        if self._producer is None:
            self._send.close()
        else:
            with contextlib.suppress(RuntimeError):  # the event loop may be gone already
                self._producer.cancel()
        self._receive.close()
