"""What running a node means for each kind: a task calls its function, a Choice picks an option,
a map calls its function per item, a loop calls its step until it returns ``Final``."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.to_thread

from ._attempt import Done, attempt
from ._errors import InputError, MaxLoopsExceeded, NoMatch, TooManyFailures

if TYPE_CHECKING:
    from ._events import Emitter
    from ._plan import PlanNode

T = TypeVar("T")


class Final(Generic[T]):
    """Returned by a loop step to stop the loop; ``value`` becomes the node's output."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Final({self.value!r})"


def calling(
    pn: PlanNode, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
) -> Callable[[], Awaitable[Any]]:
    """A zero-argument coroutine function making one call of ``fn`` the node's way: on the loop
    (async), in a worker thread abandoned on cancel (sync), or in a worker process killed on
    cancel (``executor="process"``)."""
    if pn.is_async:
        return lambda: fn(*args, **kwargs)
    bound = functools.partial(fn, *args, **kwargs)
    if pn.node.executor == "process":
        from anyio import to_process  # imported on first use: it pulls in subprocess machinery

        return lambda: to_process.run_sync(bound, cancellable=True)
    return lambda: anyio.to_thread.run_sync(bound, abandon_on_cancel=True)


async def run_task(
    pn: PlanNode, store: Mapping[str, Any], done: Done, emit: Emitter | None, rng: Any
) -> Done:
    """A plain node: resolve the arguments once, then attempt the call."""
    try:
        args, kwargs = pn.arguments(store)
    except InputError as exc:
        done.attempts = 1
        return done.fail(exc)
    assert pn.node.fn is not None
    return await attempt(pn, calling(pn, pn.node.fn, args, kwargs), done, emit, rng)


def choose(pn: PlanNode, data: Mapping[str, Any]) -> str:
    """The first option whose condition holds (a None condition always does).

    Raises:
        NoMatch: no option held and there is no default.
    """
    for option, test in pn.options:
        if test is None or test(dict(data)):
            return option
    raise NoMatch(f"Choice {pn.name!r}: no option matched and it has no default option")


async def run_choice(
    pn: PlanNode, store: Mapping[str, Any], done: Done, emit: Emitter | None, rng: Any
) -> Done:
    """A Choice node: its output is the name of the option taken."""
    data = pn.data(store)

    async def pick() -> str:
        return choose(pn, data)

    return await attempt(pn, pick, done, emit, rng)


async def run_map(
    pn: PlanNode, store: Mapping[str, Any], done: Done, emit: Emitter | None, rng: Any
) -> Done:
    """A map node: one call per item, each under the node's error handling."""
    done.attempts = 1
    try:
        args, kwargs = pn.arguments(store)
        assert pn.items is not None
        items = pn.items(pn.data(store))
        if not isinstance(items, list | tuple):
            raise InputError(
                f"map {pn.name!r}: items resolved to {type(items).__name__}, "
                f"not a list: {items!r:.80}"
            )
    except InputError as exc:
        return done.fail(exc)
    return await _map_items(pn, items, args, kwargs, done, rng)


async def _map_items(
    pn: PlanNode,
    items: list[Any] | tuple[Any, ...],
    args: list[Any],
    kwargs: dict[str, Any],
    done: Done,
    rng: Any,
) -> Done:
    spec = pn.node.map
    assert spec is not None
    assert pn.node.fn is not None
    fn, count = pn.node.fn, len(items)
    limit = spec.tolerated_failures
    allowed = math.floor(limit * count) if isinstance(limit, float) else limit
    results: list[dict[str, Any] | None] = [None] * count
    pending = iter(range(count))
    failed: list[int] = []

    async def worker(scope: anyio.CancelScope) -> None:
        for i in pending:
            item = await attempt(pn, calling(pn, fn, [items[i], *args], kwargs), Done(), None, rng)
            results[i] = item.envelope()
            if item.status == "failure":
                failed.append(i)
                if pn.raises or (allowed is not None and len(failed) > allowed):
                    scope.cancel()
                    return

    async with anyio.create_task_group() as tg:
        for _ in range(min(spec.concurrency or count, count)):
            tg.start_soon(worker, tg.cancel_scope)
    if pn.raises and failed:
        error = results[failed[0]]["error"]  # type: ignore[index]
        done.status, done.error = (
            "failure",
            {"type": error["type"], "message": f"item {failed[0]}: {error['message']}"},
        )
        return done
    if allowed is not None and len(failed) > allowed:
        return done.fail(
            TooManyFailures(
                f"map {pn.name!r}: {len(failed)} of {count} items failed, "
                f"more than the {allowed} tolerated"
            )
        )
    done.status, done.output = "success", results
    return done


async def call_any(fn: Callable[..., Any], arg: Any) -> Any:
    """Call ``fn(arg)``: awaited if it is async, in a worker thread if not."""
    if inspect.iscoroutinefunction(fn):
        return await fn(arg)
    return await anyio.to_thread.run_sync(fn, arg, abandon_on_cancel=True)


async def run_loop(
    pn: PlanNode, store: Mapping[str, Any], done: Done, emit: Emitter | None, rng: Any
) -> Done:
    """A loop node: one attempt runs the step until ``Final``, up to ``max_loops`` times."""
    spec = pn.node.loop
    assert spec is not None
    assert pn.node.fn is not None
    step = pn.node.fn
    try:
        _, initial = pn.arguments(store)
    except InputError as exc:
        done.attempts = 1
        return done.fail(exc)

    async def loop() -> Any:
        state: Any = dict(initial)
        for _ in range(spec.max_loops):
            state = await (
                step(state)
                if pn.is_async
                else anyio.to_thread.run_sync(step, state, abandon_on_cancel=True)
            )
            if isinstance(state, Final):
                return state.value
        if spec.on_max_loops == "return":
            return state if spec.finalize is None else await call_any(spec.finalize, state)
        raise MaxLoopsExceeded(
            f"Agent {pn.name!r} has reached the maximum loop limit of {spec.max_loops} "
            "without finding a final answer"
        )

    return await attempt(pn, loop, done, emit, rng)


RUNNERS = {"task": run_task, "choice": run_choice, "map": run_map, "loop": run_loop}
