"""One node's attempts: call under a cancel scope when a timeout is set, classify the failure,
wait with backoff, retry; fill in the node's ``NodeState`` as it goes."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import attempt_timed_out
from .._models import AttemptRecord
from .backoff import wait_before_retry
from .context import CURRENT
from .encode import settle_output
from .failures import as_failure, failure_info, release_frames
from .invoke import thread_done
from .observe import Observers, Wait
from .rates import throttle
from .states import NodeState, RunState

if TYPE_CHECKING:
    from .planned import PlanNode


def _retries(pn: PlanNode, exc: Exception) -> bool:
    try:
        return pn.policy.retries(exc)
    except Exception:  # a retry_on predicate that raises does not retry
        return False


def _bound(
    fn: Callable[..., Awaitable[Any]], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Callable[[], Awaitable[Any]]:
    """``fn`` with its arguments bound (a partial only when it takes some)."""
    if kwargs:
        return functools.partial(fn, *args, **kwargs)
    if args:
        return functools.partial(fn, *args)
    return fn


async def attempt(
    pn: PlanNode,
    fn: Callable[..., Awaitable[Any]],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    state: NodeState,
    ctx: RunState,
    *,
    item: int | None = None,
) -> NodeState:
    """Await ``fn(*args, **kwargs)`` until it succeeds or the policy says stop, filling in
    ``state`` (it may hold a resumed node's attempts); a map item (``item``) tells no observer."""
    timeout = pn.timeout
    observers = ctx.observers if item is None else ()
    clock, origin = ctx.clock, ctx.origin
    fn = _bound(fn, args, kwargs)
    while True:
        call = await _permitted(fn, pn, state, ctx, item) if pn.rates else fn
        state.attempts += 1
        number = state.attempts
        if observers:
            started(observers, pn.name, number)
        start = clock() - origin  # seconds from the run's start, as traces give them
        here = CURRENT.set((ctx.run_id, ctx.workflow, pn.name, number, item))  # current()
        try:
            output = await call() if timeout is None else await _timed(call, timeout, pn, number)
        except BaseException as caught:
            CURRENT.reset(here)
            wait = failed_attempt(pn, caught, state, ctx, start, item)
            if wait is None:
                return state
            if wait > 0 or pn.in_thread or observers or ctx.park_after is not None:
                await _before_retry(pn, state, wait, ctx, item)  # else: at once, unobserved
        else:
            CURRENT.reset(here)
            return _succeeded(pn, state, start, clock() - origin, output, item)


def failed_attempt(
    pn: PlanNode,
    caught: BaseException,
    state: NodeState,
    ctx: RunState,
    start: float,
    item: int | None = None,
) -> float | None:
    """Attempt ``state.attempts`` (started at ``start``, from the run's start) raised
    ``caught``: record it and return the wait before the next attempt, or None when it was
    the last (``state`` is then a failure). A cancellation (or KeyboardInterrupt...) is never
    swallowed: it is raised again."""
    exc = caught if isinstance(caught, Exception) else as_failure(caught, pn.name)
    if exc is None:
        try:
            raise caught
        finally:  # its traceback holds this frame: no reference cycle through the local
            del caught
    wait = _failed(pn, exc, state, ctx, start)
    del exc, caught  # the same
    return wait


def started(observers: Observers, node: str, number: int) -> None:
    """Tell ``observers`` that attempt ``number`` of ``node`` starts."""
    for observer in observers:
        observer.node_started(node, number)


async def _permitted(
    fn: Callable[[], Awaitable[Any]],
    pn: PlanNode,
    state: NodeState,
    ctx: RunState,
    item: int | None,
) -> Callable[[], Awaitable[Any]]:
    """``fn`` once the attempt about to start has its rate-limit permits (``throttle``); or,
    when a turn is too far away, what fails the attempt with ``RateLimited``."""
    refused = await throttle(pn, state, ctx, item)
    if refused is None:
        return fn

    async def rate_limited() -> Any:
        raise refused

    return rate_limited


def _succeeded(
    pn: PlanNode, state: NodeState, start: float, end: float, output: Any, item: int | None
) -> NodeState:
    """Record the successful attempt; a node's output (a map item's is settled with its map's
    list) in its one JSON form, or an OutputError (``_encode``)."""
    state.attempted(start, end, output)
    if item is None:
        settle_output(pn.name, state)
    return state


async def _before_retry(
    pn: PlanNode, state: NodeState, wait: float, ctx: RunState, item: int | None
) -> None:
    """Wait ``wait`` seconds (a node's wait goes through its scheduler, which tells the
    observers and may park the run; a map item's is its own); then, for a sync node, until the
    thread of the attempt that just failed has returned (a timed-out thread is abandoned, but
    never overlaps its own retry): that time goes on the attempt's trace (``held``)."""
    scheduler = ctx.scheduler if item is None else None
    if scheduler is not None and (ctx.observers or ctx.park_after is not None):
        info = state.trace[-1].error
        error = None if info is None else {"type": info.type, "message": info.message}
        announced = Wait("retry", wait, time.time() + wait, error)
        scheduler.waiting(pn.name, state, announced)
        if wait > 0:
            await anyio.sleep(wait)
        scheduler.woke(announced)
    elif wait > 0:
        await anyio.sleep(wait)
    if pn.in_thread:
        begin = ctx.clock()
        if await thread_done(ctx.run_id, pn.name, item):
            state.trace[-1].held = ctx.clock() - begin


async def _timed(
    fn: Callable[[], Awaitable[Any]], timeout: float, pn: PlanNode, number: int
) -> Any:
    """``await fn()`` within ``timeout`` seconds (a cancel scope).

    Raises:
        TimeoutError: naming the node, the attempt and the limit.
    """
    with anyio.move_on_after(timeout):  # it swallows only its own cancellation
        return await fn()
    raise attempt_timed_out(pn.name, number, pn.policy.max_retries + 1, timeout)


def item_envelope(state: NodeState) -> dict[str, Any]:
    """A map item's envelope as its map's output lists it: ``{status, output, error}`` with
    the error's type and message (its traceback stays with the attempt), whether the item ran
    once or through ``attempt``'s retries."""
    error = state["error"]
    if error is not None:
        error = {"type": error["type"], "message": error["message"]}
    return {"status": state["status"], "output": state["output"], "error": error}


def _failed(
    pn: PlanNode,
    exc: Exception,
    state: NodeState,
    ctx: RunState,
    start: float,
) -> float | None:
    """Record attempt ``state.attempts`` failing with ``exc``; return the wait before the next
    attempt, or None when it was the last (``state`` is then a failure)."""
    number, policy, wait = state.attempts, pn.policy, None
    types = pn.retry_types
    if number <= policy.max_retries and (
        isinstance(exc, types) if types is not None else _retries(pn, exc)
    ):
        waits = pn.waits
        wait = waits[number - 1] if waits else wait_before_retry(policy, number - 1, ctx.rng)
    info = failure_info(exc, ctx.errors)
    if wait is None:
        state.attempt_failed(start, ctx.clock() - ctx.origin, info, None)
        state.failed_with(exc)
        return None
    state.record(AttemptRecord(number, start, ctx.clock() - ctx.origin - start, info, wait))
    if pn.in_thread:  # anyio's thread call keeps it in a frame of its path: a cycle
        release_frames(exc)
    return wait
