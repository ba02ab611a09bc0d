"""``RayExecutor``: heavy sync nodes as Ray tasks, on a local Ray or a cluster
(``pip install flowrt[ray]``; never part of the core install).

``Workflow(executor=RayExecutor())`` sends every sync node there; ``wf.node(fn,
executor=RayExecutor(num_cpus=2))`` one node; in YAML ``executor: ray`` or ``executor: {ray:
{num_cpus: 2}}``. flowrt's policy is the only one: Ray's own retries are off. A timeout, a run
deadline or a cancelled caller kills the task (``ray.cancel(force=True)``) and waits until it
has stopped, so an attempt never overlaps its retry; a worker that dies fails the attempt with
``flowrt.WorkerCrashed`` (retried like any failure). Works on asyncio and trio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import ray
import ray.exceptions
import sniffio
from ray import cloudpickle

from ._errors import WorkerCrashed

_init_lock = threading.Lock()
STOP_WAIT = 30.0  # seconds a cancelled task gets to stop (force-killed) before flowrt goes on


def _start_session(address: str | None) -> None:
    """``ray.init`` on a thread of its own that lives as long as the process. A local Ray's
    processes die with the *thread* that started them (Linux's parent-death signal): started
    from an event loop's worker thread, they died when that loop ended, and the process's next
    run waited forever for them."""
    started: concurrent.futures.Future[None] = concurrent.futures.Future()

    def hold() -> None:
        try:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        threading.Event().wait()  # the session's parent thread: never returns (a daemon)

    threading.Thread(target=hold, name="flowrt-ray-session", daemon=True).start()
    started.result()


def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


class RayExecutor:
    """Run sync node functions as Ray tasks.

    Args:
        address: the Ray cluster to connect to (``ray.init(address=...)``); None: the session
            already started in this process (``ray.is_initialized()``), else a local one.
        remote_options: Ray task options (``num_cpus``, ``num_gpus``, ``memory``,
            ``resources``, ``runtime_env``...); ``max_retries`` and ``retry_exceptions`` are
            always off.
    """

    def __init__(self, address: str | None = None, **remote_options: Any) -> None:
        self.address = address
        self.remote_options = dict(remote_options)
        self._task: Any = None

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.remote_options.items())
        return f"RayExecutor(address={self.address!r}{options})"

    def to_data(self) -> str | dict[str, dict[str, Any]]:
        """The data form (``executor:`` in a workflow file)."""
        options = dict(self.remote_options)
        if self.address is not None:
            options["address"] = self.address
        return {"ray": options} if options else "ray"

    def _remote(self) -> Any:
        with _init_lock:
            if not ray.is_initialized():
                _start_session(self.address)
            if self._task is None:
                options = {**self.remote_options, "max_retries": 0, "retry_exceptions": False}
                self._task = ray.remote(_run).options(**options)
            return self._task

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` as a Ray task; see the module docstring.

        Raises:
            WorkerCrashed: the worker running it died.
            TypeError: an argument or the result cannot be serialised (naming it).
            BaseException: what ``fn`` raised.
        """
        task: Any = self._task if ray.is_initialized() else None
        if task is None:
            task = await anyio.to_thread.run_sync(self._remote)
        try:
            ref = task.remote(fn, *args, **kwargs)
        except Exception as exc:
            raise _unsendable(fn, args, kwargs, exc) from None
        future = ref.future()
        try:
            if sniffio.current_async_library() == "asyncio":
                return await _awaited(future)
            return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
        except ray.exceptions.RayTaskError as failed:
            raise _failure(fn, failed) from None
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as died:
            raise WorkerCrashed(getattr(fn, "node", None), str(died).splitlines()[0]) from None
        except BaseException:  # cancelled (a timeout, a deadline, the caller): stop it first
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_stop, ref, future)
            raise


async def _awaited(future: concurrent.futures.Future[Any]) -> Any:
    """``future``'s result on asyncio. Cancelling the wait leaves ``future`` alone (what
    ``asyncio.wrap_future`` would cancel is the task's own stop signal here: ``_stop``)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    def settled(_: concurrent.futures.Future[Any]) -> None:
        loop.call_soon_threadsafe(wake)

    future.add_done_callback(settled)
    await waiter
    return future.result()


def _stop(ref: Any, future: concurrent.futures.Future[Any]) -> None:
    """Kill the task and wait until it has stopped."""
    ray.cancel(ref, force=True)
    concurrent.futures.wait([future], timeout=STOP_WAIT)


def _failure(fn: Callable[..., Any], failed: Any) -> BaseException:
    """What the node fails with: the function's own exception, or a result Ray could not
    send back, named."""
    cause = getattr(failed, "cause", None)
    text = str(getattr(failed, "traceback_str", "") or failed)
    if f"in {_run.__name__}\n" not in text:  # it failed after the function had returned
        node = getattr(fn, "node", None) or getattr(fn, "__name__", "?")
        return TypeError(f"node {node!r}: its result cannot be sent back from Ray: {cause}")
    if isinstance(cause, BaseException):
        return cause
    return RuntimeError(text.splitlines()[0] if text else "the Ray task failed")


def _unsendable(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception
) -> Exception:
    """A TypeError naming the argument Ray could not serialise."""
    target = getattr(fn, "fn", fn)
    node = getattr(fn, "node", None)
    try:
        bound = inspect.signature(target).bind(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = {f"#{i}": value for i, value in enumerate(args)} | kwargs
    for name, value in bound.items():
        try:
            cloudpickle.dumps(value)  # type: ignore[no-untyped-call]
        except Exception as reason:
            where = "a node" if node is None else f"node {node!r}"
            return TypeError(f"{where}: argument {name!r} cannot be sent to Ray: {reason}")
    return exc
