"""A compiled workflow: the frozen ``Plan`` runs execute and its ``PlanNode``s (``_engine.plan``
compiles them from a ``Definition``; a run never writes into them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FunctionType
from typing import Any

from .._conditions import CompiledCondition
from .._errors import InputError
from .._executors import ExecutorSpec
from .._models import ErrorHandling, WorkflowRetry
from .._nodes import Kind, LoopSpec, MapSpec, Trigger, WaitSpec
from .._resolve import Pair, Value, view
from .invoke import Invoke
from .limits import PlannedLimit
from .rates import PlannedRate
from .states import NodeState

_MISSING = object()
_NO_ARGS: tuple[Any, ...] = ()
_NO_KWARGS: Mapping[str, Any] = {}  # never mutated: ``**`` unpacking copies it (a proxy is slower)


def _unstartable(results: Mapping[str, Any]) -> Awaitable[Any]:
    """The start of a node that is not ``direct`` (none: ``attempt`` calls it)."""
    raise AssertionError("only a direct node is started by its starter")


@dataclass(slots=True)
class PlanNode:
    """One node, compiled. ``edges`` are (dependency index, Choice option or None); ``invoke``
    calls ``fn`` the node's way (None for a Choice)."""

    index: int
    name: str
    kind: Kind
    policy: ErrorHandling
    trigger: Trigger
    fn: Callable[..., Any] | None = None
    executor: ExecutorSpec = "thread"
    map: MapSpec | None = None
    loop: LoopSpec | None = None
    wait: WaitSpec | None = None
    is_async: bool = False
    in_thread: bool = False  # a sync function run in a worker thread (executor "thread")
    timeout: float | None = None  # the attempt's timeout that attempt() applies
    edges: tuple[tuple[int, str | None], ...] = ()
    deps: tuple[int, ...] = ()
    dependents: tuple[int, ...] = ()  # a tuple of ints: the collector stops tracking it
    positional: tuple[tuple[str, Value], ...] = ()
    keywords: tuple[tuple[str, Value], ...] = ()
    from_input: tuple[tuple[str, bool], ...] = ()
    visible: tuple[str, ...] = ("input",)
    needs_view: bool = False
    item_param: str | None = None
    items: Value | None = None
    options: tuple[tuple[str, CompiledCondition | None], ...] = ()
    invoke: Invoke | None = None
    retry_types: tuple[type[BaseException], ...] | None = None  # retry_on, when not a predicate
    waits: tuple[float, ...] | None = None  # the wait before each retry, when there is no jitter
    rates: tuple[PlannedRate, ...] = ()  # its rate limits: each attempt takes their permits
    direct: bool = False  # a task node without retries, timeout or rate limit: called inline
    lone: bool = False  # one dependency (not a Choice option) whose success lets it run
    after: int | None = None  # its one dependent, when that is ``lone``: a chain's next node
    start: Callable[[Mapping[str, Any]], Awaitable[Any]] = _unstartable  # ``starter``

    @property
    def raises(self) -> bool:
        """Whether a failure of this node blocks its dependents and fails the run."""
        return self.policy.behavior == "raise"

    def data(self, results: Mapping[str, Any]) -> Mapping[str, Any]:
        """What this node's selectors read: all the results, or only its dependencies' part."""
        return view(results, self.visible) if self.needs_view else results

    def arguments(self, results: Mapping[str, Any]) -> tuple[Sequence[Any], Mapping[str, Any]]:
        """Resolve the function's arguments (shared empty ones for a function without any).

        Raises:
            InputError: a parameter has no value, or a template failed to render.
        """
        if not (self.positional or self.keywords or self.from_input):
            return _NO_ARGS, _NO_KWARGS
        data = self.data(results)
        args = [value(data) for _, value in self.positional]
        kwargs = {name: value(data) for name, value in self.keywords}
        if self.from_input:
            given = results["input"]
            for name, required in self.from_input:
                if isinstance(given, dict) and name in given:
                    kwargs[name] = given[name]
                elif required:
                    raise InputError(
                        f"parameter {name!r} has no value: not in its inputs, not in the run "
                        f"input ($.input.{name}), and no default",
                        node=self.name,
                        field=name,
                    )
        return args, kwargs


def starter(pn: PlanNode) -> Callable[[Mapping[str, Any]], Awaitable[Any]]:
    """What starts a task node's attempt from the run's results: its arguments resolved
    (``arguments``) and its invoker called, made once per plan for the node's shape (a node
    whose arguments are all plain keywords builds their dict directly; one whose one input is
    a two-key path reads it itself: ``_pair_start``; a plain function's one input is passed by
    position when that is its first parameter: ``by_position``).

    Raises (when called):
        InputError: an argument could not be resolved.
    """
    invoke = pn.invoke
    assert invoke is not None
    if pn.positional or pn.from_input or pn.needs_view or not pn.keywords:

        def start(results: Mapping[str, Any]) -> Awaitable[Any]:
            args, kwargs = pn.arguments(results)
            return invoke(*args, **kwargs)

        return start
    if len(pn.keywords) == 1:
        ((name, value),) = pn.keywords
        call = invoke if by_position(pn, name) else _by_keyword(invoke, name)
        if type(value) is Pair:
            return _pair_start(call, value)
        return lambda results: call(value(results))
    keywords = pn.keywords
    return lambda results: invoke(**{name: value(results) for name, value in keywords})


def by_position(pn: PlanNode, name: str) -> bool:
    """Whether node ``pn``'s invoker can take its input ``name`` as the first positional
    argument, the same call as by keyword (and a dict fewer: a third of a plain call): it is
    the function itself (async), a plain ``def`` (not a wrapper, whose ``*args, **kwargs``
    would see the difference) whose first parameter is ``name``, positional or keyword."""
    fn = pn.fn
    if pn.invoke is not fn or type(fn) is not FunctionType or hasattr(fn, "__wrapped__"):
        return False
    code = fn.__code__
    return code.co_argcount > code.co_posonlyargcount == 0 and code.co_varnames[0] == name


def _by_keyword(invoke: Invoke, name: str) -> Callable[[Any], Awaitable[Any]]:
    return lambda argument: invoke(**{name: argument})


def _pair_start(
    call: Callable[[Any], Awaitable[Any]], value: Pair
) -> Callable[[Mapping[str, Any]], Awaitable[Any]]:
    """``starter`` for a node whose one input is a two-key path (``$.node.output``), given
    to ``call``: the two keys read here, as ``Pair`` reads them (anything but a plain dict or
    an envelope: by ``Pair`` itself). tests/test_resolve.py checks it against the path."""
    node, key = value.keys

    def start(results: Mapping[str, Any]) -> Awaitable[Any]:
        found = results.get(node)
        if found.__class__ is NodeState or found.__class__ is dict:  # (a node's, mostly)
            got = found.get(key, _MISSING)
            return call(None if got is _MISSING else got)
        return call(value(results))

    return start


@dataclass(slots=True)
class Plan:
    """A validated workflow, frozen: its name, nodes by index, roots (no dependencies), leaves
    (no dependents), the compiled output mapping, the concurrency cap and the workflow-level
    retry. ``signals`` maps the signals its wait nodes take to their schemas (None: it has no
    wait or sleep node); ``children``: it has sub-workflow nodes; ``limits`` its run limits.
    Runs only read it."""

    name: str
    nodes: list[PlanNode]
    index: dict[str, int]
    roots: list[int]
    leaves: list[int]
    output: dict[str, Value] | None
    max_concurrency: int | None
    retry: WorkflowRetry
    fail_fast: bool = False
    signals: dict[str, Any] | None = None
    children: bool = False
    limits: tuple[PlannedLimit, ...] = ()  # its run limits (``_engine.limits``)
    indegrees: tuple[int, ...] = ()  # each node's number of dependencies, by index
    leaf_names: tuple[str, ...] = ()  # the leaves' names (the output without a mapping)
