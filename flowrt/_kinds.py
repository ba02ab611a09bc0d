"""What running a node means for each kind: a task calls its function, a Choice picks an option,
a map calls its function per item, a loop calls its step until it returns ``Final``."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import CodeType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from ._attempt import Context, NodeRecord, as_failure, attempt, error_info
from ._context import register
from ._errors import InputError, MaxLoopsExceeded, NoMatch, TooManyFailures
from ._invoke import call_any
from ._native import task_group

if TYPE_CHECKING:
    from ._plan import PlanNode

T = TypeVar("T")


class Final(Generic[T]):
    """Returned by a loop step to stop the loop; ``value`` becomes the node's output."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Final({self.value!r})"


Call = tuple[Callable[..., Awaitable[Any]], Sequence[Any], Mapping[str, Any]]


def prepare_task(pn: PlanNode, results: Mapping[str, Any]) -> Call:
    """A plain node: its function with the arguments resolved once, before the first attempt.

    Raises:
        InputError: an argument could not be resolved.
    """
    args, kwargs = pn.arguments(results)
    assert pn.invoke is not None
    return pn.invoke, args, kwargs


def choose(pn: PlanNode, data: Mapping[str, Any]) -> str:
    """The first option whose condition holds (a None condition always does).

    Raises:
        NoMatch: no option held and there is no default.
    """
    for option, test in pn.options:
        if test is None or test(dict(data)):
            return option
    raise NoMatch(f"Choice {pn.name!r}: no option matched and it has no default option")


async def _pick(pn: PlanNode, data: Mapping[str, Any]) -> str:
    return choose(pn, data)


def prepare_choice(pn: PlanNode, results: Mapping[str, Any]) -> Call:
    """A Choice node: its output is the name of the option taken."""
    return _pick, (pn, pn.data(results)), {}


async def run_map(
    pn: PlanNode, results: Mapping[str, Any], done: NodeRecord, ctx: Context
) -> NodeRecord:
    """A map node: one call per item, each under the node's error handling."""
    done.attempts = 1
    try:
        args, kwargs = pn.arguments(results)
        assert pn.items is not None
        items = pn.items(pn.data(results))
        if not isinstance(items, list | tuple):
            raise InputError(
                f"map {pn.name!r}: items resolved to {type(items).__name__}, "
                f"not a list: {items!r:.80}"
            )
    except InputError as exc:
        return done.fail(exc)
    return await _map_items(pn, items, args, kwargs, done, ctx)


async def _map_items(
    pn: PlanNode,
    items: list[Any] | tuple[Any, ...],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    done: NodeRecord,
    ctx: Context,
) -> NodeRecord:
    spec = pn.map
    assert spec is not None
    count = len(items)
    limit = spec.tolerated_failures
    allowed = math.floor(limit * count) if isinstance(limit, float) else limit
    results: list[dict[str, Any] | None] = [None] * count
    pending = iter(range(count))
    failed: list[int] = []
    plain = pn.policy.max_retries == 0 and pn.policy.timeout_seconds is None

    invoke = pn.invoke
    assert invoke is not None
    bare = not args and not kwargs

    async def worker(scope: anyio.CancelScope) -> None:
        for i in pending:
            if plain:  # no retries, no timeout: one call is the whole policy
                try:
                    if bare:
                        output = await invoke(items[i])
                    else:
                        output = await invoke(items[i], *args, **kwargs)
                    envelope = {"status": "success", "output": output, "error": None}
                except BaseException as caught:
                    exc = as_failure(caught, pn.name)
                    if exc is None:
                        raise
                    envelope = {"status": "failure", "output": None, "error": error_info(exc)}
            else:
                call = (items[i], *args)
                envelope = dict(await attempt(pn, invoke, call, kwargs, NodeRecord(), ctx, i))
            results[i] = envelope
            if envelope["status"] == "failure":
                failed.append(i)
                if pn.raises or (allowed is not None and len(failed) > allowed):
                    scope.cancel()
                    return

    with anyio.CancelScope() as scope:
        async with task_group() as spawn:
            for _ in range(min(spec.concurrency or count, count)):
                spawn(worker, scope)
    if pn.raises and failed:
        error = results[failed[0]]["error"]  # type: ignore[index]
        message = f"item {failed[0]}: {error['message']}"
        return done.failed({"type": error["type"], "message": message})
    if allowed is not None and len(failed) > allowed:
        return done.fail(
            TooManyFailures(
                f"map {pn.name!r}: {len(failed)} of {count} items failed, "
                f"more than the {allowed} tolerated"
            )
        )
    return done.succeed(results)


async def _loop(pn: PlanNode, initial: Mapping[str, Any]) -> Any:
    spec = pn.loop
    assert spec is not None
    step = pn.invoke
    assert step is not None
    state: Any = dict(initial)
    for _ in range(spec.max_loops):
        state = await step(state)
        if isinstance(state, Final):
            return state.value
    if spec.on_max_loops == "return":
        return state if spec.finalize is None else await call_any(spec.finalize, state)
    raise MaxLoopsExceeded(
        f"Agent {pn.name!r} has reached the maximum loop limit of {spec.max_loops} "
        "without finding a final answer"
    )


def prepare_loop(pn: PlanNode, results: Mapping[str, Any]) -> Call:
    """A loop node: one attempt runs the step until ``Final``, up to ``max_loops`` times; the
    first state is the dict of the node's inputs.

    Raises:
        InputError: an input could not be resolved.
    """
    _, initial = pn.arguments(results)
    return _loop, (pn, initial), {}


PREPARE = {"task": prepare_task, "choice": prepare_choice, "loop": prepare_loop}


_WORKER = next(
    code
    for code in _map_items.__code__.co_consts
    if isinstance(code, CodeType) and code.co_name == "worker"
)  # a map's worker runs plain items itself (items with a policy run in attempt())
register(_WORKER, lambda f: (f["ctx"].run_id, f["ctx"].workflow, f["pn"].name, 1, f["i"]))
