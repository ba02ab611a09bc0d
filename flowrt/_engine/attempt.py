"""One node's attempts: call under a cancel scope when a timeout is set, classify the failure,
wait with backoff, retry; fill in the node's ``NodeState`` as it goes."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from .._errors import attempt_timed_out
from .._models import AttemptRecord, ErrorInfo, Status
from .backoff import wait_before_retry
from .context import CURRENT
from .encode import settle_output
from .failures import as_failure, error_fields, failure_info, format_traceback, release_frames
from .invoke import thread_done
from .observe import Observers, Wait
from .rates import MEMORY, Limiter, throttle

if TYPE_CHECKING:
    from .planned import PlanNode


class NodeState(dict[str, Any]):
    """A node's state while it runs and after. It is also the node's envelope in the result
    results: as a dict it holds exactly ``status``, ``output`` and ``error`` (what selectors,
    templates and conditions see); the rest lives in slots. ``status`` is None until the node
    finishes; a skipped node has a ``reason`` and the root ``cause`` of its skip."""

    __slots__ = (
        "attempts",
        "cause",
        "duration",
        "exception",
        "permit",
        "reason",
        "text",
        "trace",
    )

    def __init__(
        self, status: Status | None = None, reason: str | None = None, cause: str | None = None
    ):
        self["status"] = status
        self["output"] = None
        self["error"] = None
        self.attempts = 0
        self.duration = 0.0
        self.reason = reason
        self.cause = cause
        self.trace: list[AttemptRecord] = []
        self.exception: BaseException | None = None  # the final failure's exception
        self.text: str | None = None  # the output as JSON text, when it was encoded
        self.permit = False  # its next attempt has its rate-limit permits (resumed in its turn)

    @property
    def status(self) -> Status | None:
        """``"success"``, ``"failure"``, ``"skip"``, or None while running."""
        return self["status"]  # type: ignore[no-any-return]

    @property
    def output(self) -> Any:
        """The function's result (None unless success)."""
        return self["output"]

    @property
    def error(self) -> dict[str, str] | None:
        """``{type, message}`` of a failure."""
        return self["error"]  # type: ignore[no-any-return]

    def attempted(self, start: float, end: float, output: Any) -> NodeState:
        """Record a successful attempt (``start`` and ``end`` on the run's clock) and finish."""
        self.trace.append(AttemptRecord(self.attempts, start, end - start))
        self["status"] = "success"  # what succeed() does, without a second call per node
        self["output"] = output
        return self

    def attempt_failed(self, start: float, end: float, info: ErrorInfo, wait: float | None) -> None:
        """Record a failed attempt with error ``info``, followed by ``wait`` (None: it was the
        last, and the node fails)."""
        self.trace.append(AttemptRecord(self.attempts, start, end - start, info, wait))
        if wait is None:
            self.failed({"type": info.type, "message": info.message})

    def failed_with(self, exc: BaseException) -> None:
        """The node's final failure was ``exc``: keep it (``RunResult.raise_for_status`` chains
        it) and its formatted traceback (in the envelope's error)."""
        self.exception = exc
        self["error"] = {**self["error"], "traceback": format_traceback(exc)}

    def succeed(self, output: Any) -> NodeState:
        """Finish as a success with ``output``."""
        self["status"] = "success"
        self["output"] = output
        return self

    def fail(self, exc: BaseException) -> NodeState:
        """Finish as a failure with ``exc``'s type and message."""
        return self.failed(error_fields(exc))

    def failed(self, error: dict[str, str]) -> NodeState:
        """Finish as a failure with ``error`` (``{type, message}``)."""
        self["status"] = "failure"
        self["output"] = None
        self["error"] = error
        return self


class RunState:
    """What every node of one run shares: its observers (an empty tuple when nothing
    watches), the random source for jitter, the loop's clock, a yield to the loop
    (``checkpoint``), the run's id and workflow name (for ``flowrt.current()``), the failures
    seen so far (``failure_info``), and its parking: ``park_after`` (seconds of a wait from
    which a worker's run is set aside; None: it never is), the scope that stops the run, and
    whether it is parking. The running scheduler is ``scheduler``."""

    __slots__ = (
        "checkpoint",
        "clock",
        "errors",
        "limiter",
        "observers",
        "origin",
        "park_after",
        "parking",
        "rng",
        "run_id",
        "scheduler",
        "scope",
        "workflow",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        checkpoint: Callable[[], Awaitable[None]],
        *,
        observers: Observers = (),
        rng: Any,
        run_id: str = "",
        workflow: str = "",
    ) -> None:
        self.observers = observers
        self.rng = rng
        self.clock = clock
        self.checkpoint = checkpoint
        self.run_id = run_id
        self.workflow = workflow
        self.errors: dict[tuple[str, str], ErrorInfo] = {}  # failures seen, shared alike
        self.origin = clock()  # the run's start on its clock: traces count from it
        self.park_after: float | None = None
        self.scope: anyio.CancelScope | None = None
        self.parking = False
        self.scheduler: Parking | None = None
        self.limiter: Limiter = MEMORY  # where rate-limit permits come from (a store's)


class Parking(Protocol):
    """The scheduler, as a node's retry wait tells it (``_engine.scheduler``): it tells the
    run's observers, and parks the run when every running node waits long."""

    def waiting(self, node: str, state: NodeState, wait: Wait) -> None:
        """Node ``node`` waits ``wait.seconds`` before its next attempt."""

    def woke(self, wait: Wait) -> None:
        """A wait that ``waiting`` announced is over."""

    def node_waits(self, node: str, wait: Wait) -> None:
        """Node ``node`` (a wait or sleep node, running) waits: ``waiting`` with its state."""

    @property
    def results(self) -> dict[str, Any]:
        """The run's results so far (what a rate limit's key reads)."""


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
            _started(observers, pn.name, number)
        start = clock() - origin  # seconds from the run's start, as traces give them
        here = CURRENT.set((ctx.run_id, ctx.workflow, pn.name, number, item))  # current()
        try:
            output = await call() if timeout is None else await _timed(call, timeout, pn, number)
        except BaseException as caught:
            CURRENT.reset(here)
            exc = caught if isinstance(caught, Exception) else as_failure(caught, pn.name)
            if exc is None:  # a cancellation (or KeyboardInterrupt...): never swallowed
                raise
            wait = _failed(pn, exc, state, ctx, start)
            del exc  # its traceback holds this frame: no reference cycle through the local
            if wait is None:
                return state
            if wait > 0 or pn.in_thread or (observers or ctx.park_after is not None):
                await _before_retry(pn, state, wait, ctx, item)  # else: at once, unobserved
        else:
            CURRENT.reset(here)
            return _succeeded(pn, state, start, clock() - origin, output, item)


def _started(observers: Observers, node: str, number: int) -> None:
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
    state.trace.append(AttemptRecord(number, start, ctx.clock() - ctx.origin - start, info, wait))
    if pn.in_thread:  # anyio's thread call keeps it in a frame of its path: a cycle
        release_frames(exc)
    return wait
