"""What running a node means for each kind: a task calls its function, a Choice picks an option,
a map calls its function per item, a loop calls its step until it returns ``Final``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._errors import MaxLoopsExceeded, NoMatch
from .invoke import call_any

if TYPE_CHECKING:
    from .planned import PlanNode

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
    raise NoMatch(pn.name)


async def _pick(pn: PlanNode, data: Mapping[str, Any]) -> str:
    return choose(pn, data)


def prepare_choice(pn: PlanNode, results: Mapping[str, Any]) -> Call:
    """A Choice node: its output is the name of the option taken."""
    return _pick, (pn, pn.data(results)), {}


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
    raise MaxLoopsExceeded(pn.name, spec.max_loops)


def prepare_loop(pn: PlanNode, results: Mapping[str, Any]) -> Call:
    """A loop node: one attempt runs the step until ``Final``, up to ``max_loops`` times; the
    first state is the dict of the node's inputs.

    Raises:
        InputError: an input could not be resolved.
    """
    _, initial = pn.arguments(results)
    return _loop, (pn, initial), {}


PREPARE = {
    "task": prepare_task,
    "choice": prepare_choice,
    "loop": prepare_loop,
    "wait": prepare_task,  # the engine's function (``_engine.signals``), called as a task's
    "sleep": prepare_task,
    "subworkflow": prepare_task,  # the engine's function (``_engine.children``)
}
