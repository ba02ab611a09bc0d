"""Noticing a client that goes away while its request runs a workflow, at almost no cost until
it does: flowrt's speed trick for ``POST /run`` (its equivalence test: tests/test_disconnect.py).

Once a request's body has been read, the next message its ASGI ``receive()`` returns is the
client going away (``http.disconnect``). Awaiting that in a task of its own, beside the run,
costs a task, a task group and a cancel scope per request: about 40 µs, a third of a small
run's. On asyncio, ``Watch`` steps the ``receive()`` coroutine by hand instead, as a task would:
up to the future it waits on, then again from that future's done callback. Nothing runs while
the client stays; a request that ends closes the coroutine (its wait is withdrawn). When
``receive()`` returns the disconnect, or fails, ``gone`` is called once.

Only a ``receive()`` known to wait on asyncio futures alone is stepped by hand: uvicorn's own
(a middleware's wrapper may enter cancel scopes, which belong to the task that enters them).
For any other, and on trio, ``start`` says no, and the caller watches with a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import TYPE_CHECKING, Any

import anyio

from .._engine.native import alongside, on_asyncio
from .._errors import InputError, RunCancelled
from .quiet_cancel import Canceller, usable

if TYPE_CHECKING:
    from starlette.requests import Request

    from .._models import RunResult
    from .._workflow import Workflow

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class Watch:
    """Steps ``receive()`` until it returns ``http.disconnect`` (or raises: ``error``), then
    calls ``gone()``."""

    __slots__ = ("_coro", "_gone", "_receive", "error", "fired")

    def __init__(self, receive: Receive, gone: Callable[[], None]) -> None:
        self._receive = receive
        self._gone = gone
        self._coro: Coroutine[Any, Any, Message] | None = None
        self.fired = False  # gone() was called
        self.error: BaseException | None = None  # what receive() raised

    def start(self) -> bool:
        """Step ``receive()`` to its first wait; False when it cannot be stepped by hand (then
        nothing is watched)."""
        if not (on_asyncio() and steppable(self._receive)):
            return False
        self._coro = self._next()
        return self._step(first=True)

    def close(self) -> None:
        """Stop watching (the request ended): the coroutine's wait is withdrawn."""
        coro, self._coro = self._coro, None
        if coro is not None:
            coro.close()

    def _next(self) -> Coroutine[Any, Any, Message]:
        call = self._receive()
        if not isinstance(call, Coroutine):
            raise TypeError(f"receive() gave {type(call).__name__}, not a coroutine")
        return call

    def _wake(self, _: object = None) -> None:
        if self._coro is not None:
            self._step(first=False)

    def _step(self, *, first: bool) -> bool:
        """Run the coroutine to its next wait; on its end, look at the message."""
        assert self._coro is not None
        while True:
            try:
                waits = self._coro.send(None)
            except StopIteration as done:
                if done.value.get("type") == "http.disconnect":
                    self._fire(None)
                    return True
                self._coro = self._next()  # another message: keep listening
                continue
            except Exception as exc:
                self._coro = None
                self._fire(exc)
                return True
            return self._wait_on(waits, first)

    def _wait_on(self, waits: Any, first: bool) -> bool:
        """Be stepped again when what the coroutine yielded is done, as a task would be."""
        if waits is None:  # a bare yield (sleep(0)): once around the loop
            asyncio.get_running_loop().call_soon(self._wake)
            return True
        if getattr(waits, "_asyncio_future_blocking", None):
            waits._asyncio_future_blocking = False
            waits.add_done_callback(self._wake)
            return True
        self.close()  # not a future: only a task can await it
        if first:
            return False
        self._fire(RuntimeError(f"receive() awaited {type(waits).__name__}, not a future"))
        return True

    def _fire(self, error: BaseException | None) -> None:
        if not self.fired:
            self.fired, self.error = True, error
            self._gone()


def steppable(receive: Receive) -> bool:
    """Whether ``receive`` is one ``Watch`` steps by hand: an ASGI server's own that waits on
    asyncio futures alone (uvicorn's HTTP protocols')."""
    owner = getattr(receive, "__self__", None)
    module = type(owner).__module__ if owner is not None else ""
    return module.startswith(_SERVERS) and getattr(receive, "__name__", "") == "receive"


_SERVERS = ("uvicorn.protocols.http.",)


def run_until_disconnect(
    wf: Workflow,
    request: Request,
    data: dict[str, Any],
    timeout: float | None,
    run_id: str | None = None,
) -> Coroutine[Any, Any, RunResult | None]:
    """Run ``wf`` (as ``run_id``); if the client disconnects first, cancel the run and return
    None. The disconnect is watched by stepping ``receive()`` by hand where that can be done
    (``Watch``: nothing runs until the client goes), else by a task beside the run; where it
    is watched by hand on asyncio, the run is cancelled by a ``Canceller`` (nothing entered
    until the client goes), else by an anyio ``CancelScope``. (A plain function: no frame of
    its own under the run.)

    Raises:
        InputError: a run-limit key without a JSON scalar value.
        RunCancelled: the run was cancelled (``LimitReached``...).
        Exception: what the request's ``receive()`` raised.
    """
    if usable() and on_asyncio() and steppable(request.receive):
        return _quietly(wf, request, data, timeout, run_id)
    return _scoped(wf, request, data, timeout, run_id)


async def _quietly(
    wf: Workflow, request: Request, data: dict[str, Any], timeout: float | None, run_id: str | None
) -> RunResult | None:
    """``run_until_disconnect`` with ``receive()`` stepped by hand and a ``Canceller``."""
    task = asyncio.current_task()
    assert task is not None
    canceller = Canceller(task)
    watch = Watch(request.receive, canceller.cancel)
    if not watch.start():  # receive() waited on something else: a task must watch it
        return await _scoped(wf, request, data, timeout, run_id)
    result: RunResult | None = None
    refused: Exception | None = None
    try:
        result = await wf.run(data, timeout=timeout, run_id=run_id)
    except asyncio.CancelledError:
        if not canceller.close():  # not (only) the client going: it goes on
            raise
    except (InputError, RunCancelled) as exc:
        refused = exc
    finally:
        watch.close()
        canceller.close()
    return _outcome(watch, refused, result)


def _outcome(watch: Watch, refused: Exception | None, result: RunResult | None) -> RunResult | None:
    """What ``run_until_disconnect`` returns or raises once the run is over."""
    if watch.error is not None:
        raise watch.error
    if refused is not None:
        raise refused
    return result


async def _scoped(
    wf: Workflow, request: Request, data: dict[str, Any], timeout: float | None, run_id: str | None
) -> RunResult | None:
    """``run_until_disconnect`` in an anyio ``CancelScope`` (trio, another server, a
    ``receive()`` that cannot be stepped by hand)."""
    result: RunResult | None = None
    refused: Exception | None = None
    with anyio.CancelScope() as scope:
        watch = Watch(request.receive, scope.cancel)
        try:
            if watch.start():
                result = await wf.run(data, timeout=timeout, run_id=run_id)
            else:
                result = await _beside_watcher(wf, request, scope, data, timeout, run_id)
        except (InputError, RunCancelled) as exc:  # raised as itself, not in a group
            refused = exc
        finally:
            watch.close()
    return _outcome(watch, refused, result)


async def _beside_watcher(
    wf: Workflow,
    request: Request,
    scope: anyio.CancelScope,
    data: dict[str, Any],
    timeout: float | None,
    run_id: str | None,
) -> RunResult:
    """Run ``wf`` with a task beside it that cancels ``scope`` when the client disconnects.

    Raises:
        InputError, RunCancelled: see ``run_until_disconnect`` (as themselves).
    """

    async def watch() -> None:
        # The body has been read: the next ASGI message is the client going away.
        while (await request.receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    refused: Exception | None = None
    result: RunResult | None = None
    async with alongside(watch):
        try:
            result = await wf.run(data, timeout=timeout, run_id=run_id)
        except (InputError, RunCancelled) as exc:  # not in the task group's exception group
            refused = exc
    if refused is not None:
        raise refused
    assert result is not None
    return result
