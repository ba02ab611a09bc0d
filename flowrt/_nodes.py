"""A workflow's nodes as they are defined: ``Node`` handles (a task, a map, a loop), ``Choice``
and its branches, and the settings of each kind. Pure: recorded here, checked and compiled by
``_engine.plan``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypedDict, TypeVar

from ._conditions import Expr
from ._executors import ExecutorSpec
from ._limits import RateLimit
from ._models import ErrorHandling


class Owner(Protocol):
    """What a node is added to (a ``Definition``): told when the node changes."""

    def _changed(self) -> None: ...


Kind = Literal["task", "choice", "map", "loop", "wait", "sleep", "subworkflow"]
Trigger = Literal["all", "any", "always", "on_failure"]

P = ParamSpec("P")
R = TypeVar("R")
OptionCondition = Expr | Callable[[dict[str, Any]], bool] | None


class NodeOptions(TypedDict, total=False):
    """The options ``Workflow.node`` takes, shared by ``map`` and ``loop``."""

    name: str | None
    depends: Sequence[AnyNode | Branch | str]
    inputs: Mapping[str, Any] | None
    error_handling: ErrorHandling | Mapping[str, Any] | None
    trigger: Trigger
    executor: ExecutorSpec | None
    rate_limit: RateLimit | Sequence[RateLimit] | None


@dataclass(frozen=True, slots=True)
class MapSpec:
    """A map node's settings: where its items come from and how many run at once."""

    items: Any
    concurrency: int | None
    tolerated_failures: int | float | None


@dataclass(frozen=True, slots=True)
class WaitSpec:
    """A wait node's settings: the signal it takes, the payload's schema (a pydantic model, or
    None: any JSON), and how long it waits (seconds; None: no limit)."""

    signal: str
    schema: Any
    timeout_seconds: float | None


@dataclass(frozen=True, slots=True)
class SleepSpec:
    """A sleep node's settings: how long (``seconds``), or until when (``until``: a selector or
    template giving ISO 8601 with a timezone, or epoch seconds). Exactly one is set."""

    seconds: float | None
    until: Any


@dataclass(frozen=True, slots=True)
class SubSpec:
    """A sub-workflow node's settings (also a map of children's): the child workflow, its run
    input (a selector, template or dict of them; None: the parent's ``$.input``; for a map,
    each item), its run id (a template over the node's input; None: ``"<parent>:<node>"``), and
    whether it is ``detach``-ed (the node succeeds once the child is started)."""

    workflow: Any
    input: Any = None
    run_id: str | None = None
    detach: bool = False


@dataclass(frozen=True, slots=True)
class LoopSpec:
    """A loop node's settings: the step limit and what happens when it is reached."""

    max_loops: int
    on_max_loops: Literal["raise", "return"]
    finalize: Callable[[Any], Any] | None


class Branch:
    """One option of a Choice node, usable in ``depends``: ``route["ok"]``."""

    __slots__ = ("choice", "option")

    def __init__(self, choice: str, option: str) -> None:
        self.choice = choice
        self.option = option

    def __repr__(self) -> str:
        return f"{self.choice}.{self.option}"


class Node(Generic[P, R]):
    """A handle on a node of a workflow, usable in another node's ``depends``. It is also its
    function: ``node(*args)`` calls it (with the function's own signature, for type checkers
    and for unit tests of the function).

    Attributes: ``name``, ``fn`` (None for a Choice), ``depends``, ``inputs``, ``error_handling``,
    ``trigger``, ``executor``, ``rate_limit``, ``kind`` (``"task"``, ``"choice"``, ``"map"``,
    ``"loop"``, ``"wait"``, ``"sleep"`` or ``"subworkflow"``; a map of children is a ``"map"``
    with ``sub``).
    """

    kind: Kind = "task"
    fn: Callable[P, R] | None
    rate_limit: RateLimit | Sequence[RateLimit] | None = None  # each attempt takes a permit
    _owner: Owner | None = None  # set once added: a change then invalidates its plan

    def __init__(
        self,
        name: str,
        fn: Callable[P, R] | None,
        *,
        depends: Sequence[AnyNode | Branch | str],
        inputs: Mapping[str, Any] | None,
        error_handling: ErrorHandling | Mapping[str, Any] | None,
        trigger: Trigger,
        executor: ExecutorSpec | None,
    ) -> None:
        if isinstance(fn, Node) and fn.fn is not None:
            fn = fn.fn  # a node of another workflow stands for its function (async stays async)
        self.name = name
        self.fn = fn
        self.depends = tuple(depends) if isinstance(depends, list | tuple) else (depends,)
        self.inputs = dict(inputs or {})
        self.error_handling = error_handling
        self.trigger = trigger
        self.executor = executor
        self.map: MapSpec | None = None
        self.loop: LoopSpec | None = None
        self.wait: WaitSpec | None = None
        self.sleep: SleepSpec | None = None
        self.sub: SubSpec | None = None
        # "package.module:function" for nodes loaded from data (a sub-workflow node: its
        # file, or {"call": ...})
        self.call: Any = None
        if fn is not None:  # the function's name, docstring and signature (inspect.signature)
            functools.update_wrapper(self, fn, updated=())

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the node's function directly (outside any run).

        Raises:
            TypeError: a Choice has no function.
        """
        if self.fn is None:
            raise TypeError(f"{self!r} has no function to call")
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if self._owner is not None:
            self._owner._changed()


AnyNode = Node[..., Any]


class Choice(Node[..., Any]):
    """A Choice node: routes to the first option whose condition holds. ``choice["ok"]`` is the
    branch to name in ``depends``; its output is the chosen option's name."""

    kind: Literal["choice"] = "choice"

    def __init__(self, name: str, options: Mapping[str, OptionCondition], **rest: Any) -> None:
        super().__init__(name, None, trigger="all", executor=None, inputs=None, **rest)
        self.options = options

    def __getitem__(self, option: str) -> Branch:
        return Branch(self.name, option)
