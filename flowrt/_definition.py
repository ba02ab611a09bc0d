"""Definitions: ``Node`` handles, Choice branches, and ``Definition``, the recorded workflow with
its builders (``node``, ``choice``, ``map``, ``loop``). Pure: it imports nothing of the engine
and runs no user code. Definitions are only recorded here; ``_plan.compile_plan`` checks them
all and compiles the ``Plan`` that runs execute. ``Workflow`` (``_graph``) is a ``Definition``
that can run."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import (
    Any,
    Generic,
    Literal,
    ParamSpec,
    TypedDict,
    TypeVar,
    Unpack,
    overload,
)

from ._conditions import Expr
from ._executors import ExecutorSpec
from ._models import ErrorHandling, WorkflowRetry

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


@dataclass(frozen=True, slots=True)
class MapSpec:
    """A map node's settings: where its items come from and how many run at once."""

    items: Any
    concurrency: int | None
    tolerated_failures: int | float | None


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
    ``trigger``, ``executor``, ``kind`` (``"task"``, ``"choice"``, ``"map"`` or ``"loop"``).
    """

    kind: Literal["task", "choice", "map", "loop"] = "task"
    fn: Callable[P, R] | None
    _owner: Definition | None = None  # set once added: a change then invalidates its plan

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
        self.call: str | None = None  # "package.module:function", for nodes loaded from data
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


class Definition:
    """A workflow as recorded: its name, output mapping, workflow-level retry, concurrency cap
    and nodes. Changing any of them (or a node) calls ``_changed`` (``Workflow`` drops its
    compiled plan there)."""

    def __init__(
        self,
        name: str,
        *,
        output: Mapping[str, Any] | None = None,
        retry: WorkflowRetry | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        executor: ExecutorSpec = "thread",
    ) -> None:
        self._name = name
        self._output = output
        self._retry = retry or WorkflowRetry()
        self._max_concurrency = max_concurrency
        self._fail_fast = fail_fast
        self._executor = executor
        self._nodes: list[AnyNode] = []
        self._paths: list[str] = []

    def _changed(self) -> None:
        """The definition changed (a hook for subclasses)."""

    @property
    def name(self) -> str:
        """The workflow's name (in results, events and logs)."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value
        self._changed()

    @property
    def output(self) -> Mapping[str, Any] | None:
        """The run's output mapping (None: the leaf nodes' outputs)."""
        return self._output

    @output.setter
    def output(self, value: Mapping[str, Any] | None) -> None:
        self._output = value
        self._changed()

    @property
    def retry(self) -> WorkflowRetry:
        """Workflow-level retry of a failed run."""
        return self._retry

    @retry.setter
    def retry(self, value: WorkflowRetry | None) -> None:
        self._retry = value or WorkflowRetry()
        self._changed()

    @property
    def max_concurrency(self) -> int | None:
        """How many nodes may run at once (None: no cap)."""
        return self._max_concurrency

    @max_concurrency.setter
    def max_concurrency(self, value: int | None) -> None:
        self._max_concurrency = value
        self._changed()

    @property
    def paths(self) -> list[str]:
        """Folders its ``call:`` modules are imported from (put first on ``sys.path`` when its
        data form is loaded again, by ``from_dict`` or ``flowrt resume``); the CLI records the
        workflow file's folder."""
        return self._paths

    @paths.setter
    def paths(self, value: list[str]) -> None:
        self._paths = list(value)
        self._changed()

    @property
    def fail_fast(self) -> bool:
        """Whether the first failure of a ``raise`` node stops the whole run at once."""
        return self._fail_fast

    @fail_fast.setter
    def fail_fast(self, value: bool) -> None:
        self._fail_fast = value
        self._changed()

    @property
    def executor(self) -> ExecutorSpec:
        """Where sync nodes run unless they name their own executor: ``"thread"``,
        ``"process"``, or an ``Executor`` object."""
        return self._executor

    @executor.setter
    def executor(self, value: ExecutorSpec) -> None:
        self._executor = value
        self._changed()

    @property
    def nodes(self) -> dict[str, AnyNode]:
        """The nodes by name, in the order they were added."""
        return {node.name: node for node in self._nodes}

    def _add(self, node: AnyNode) -> AnyNode:
        self._nodes.append(node)
        node._owner = self
        self._changed()
        return node

    @overload
    def node(self, fn: Callable[P, R], **options: Unpack[NodeOptions]) -> Node[P, R]: ...
    @overload
    def node(
        self, fn: None = None, **options: Unpack[NodeOptions]
    ) -> Callable[[Callable[P, R]], Node[P, R]]: ...
    def node(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        depends: Sequence[AnyNode | Branch | str] = (),
        inputs: Mapping[str, Any] | None = None,
        error_handling: ErrorHandling | Mapping[str, Any] | None = None,
        trigger: Trigger = "all",
        executor: ExecutorSpec | None = None,
    ) -> AnyNode | Callable[[Callable[..., Any]], AnyNode]:
        """Add a node running ``fn`` (async on the loop; sync in a worker thread or process).

        Usable as ``@wf.node``, ``@wf.node(...)`` or ``wf.node(fn, ...)``; returns a ``Node``.
        Definitions are checked by ``validate()`` (and so by ``run``).
        """

        def add(fn: Callable[..., Any]) -> AnyNode:
            return self._add(
                Node(
                    _name_of(fn) if name is None else name,
                    fn,
                    depends=depends,
                    inputs=inputs,
                    error_handling=error_handling,
                    trigger=trigger,
                    executor=executor,
                )
            )

        return add if fn is None else add(fn)

    def choice(
        self,
        name: str,
        options: Mapping[str, OptionCondition],
        *,
        depends: Sequence[AnyNode | Branch | str] = (),
        error_handling: ErrorHandling | Mapping[str, Any] | None = None,
    ) -> Choice:
        """Add a Choice node; options are tried in order, a ``None`` condition is the default
        (it must be last). Nodes depending on an option not taken are skipped."""
        node = Choice(name, options, depends=depends, error_handling=error_handling)
        self._add(node)
        return node

    @overload
    def map(
        self,
        fn: Callable[P, R],
        *,
        items: Any,
        concurrency: int | None = None,
        tolerated_failures: int | float | None = None,
        **options: Unpack[NodeOptions],
    ) -> Node[P, R]: ...
    @overload
    def map(
        self,
        fn: None = None,
        *,
        items: Any,
        concurrency: int | None = None,
        tolerated_failures: int | float | None = None,
        **options: Unpack[NodeOptions],
    ) -> Callable[[Callable[P, R]], Node[P, R]]: ...
    def map(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        items: Any,
        concurrency: int | None = None,
        tolerated_failures: int | float | None = None,
        **options: Unpack[NodeOptions],
    ) -> AnyNode | Callable[[Callable[..., Any]], AnyNode]:
        """Add a node that calls ``fn`` once per item (its first parameter), at most
        ``concurrency`` at a time, each item under the node's error handling. Its output is the
        list of per-item envelopes ``{status, output, error}`` in item order. Other options as
        ``node``."""
        return self._special(fn, MapSpec(items, concurrency, tolerated_failures), options)

    @overload
    def loop(
        self,
        fn: Callable[P, R],
        *,
        max_loops: int = 15,
        on_max_loops: Literal["raise", "return"] = "raise",
        finalize: Callable[[Any], Any] | None = None,
        **options: Unpack[NodeOptions],
    ) -> Node[P, R]: ...
    @overload
    def loop(
        self,
        fn: None = None,
        *,
        max_loops: int = 15,
        on_max_loops: Literal["raise", "return"] = "raise",
        finalize: Callable[[Any], Any] | None = None,
        **options: Unpack[NodeOptions],
    ) -> Callable[[Callable[P, R]], Node[P, R]]: ...
    def loop(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        max_loops: int = 15,
        on_max_loops: Literal["raise", "return"] = "raise",
        finalize: Callable[[Any], Any] | None = None,
        **options: Unpack[NodeOptions],
    ) -> AnyNode | Callable[[Callable[..., Any]], AnyNode]:
        """Add an agent-style loop: ``fn(state)`` is called until it returns ``Final(value)``, the
        state being first the dict of the node's inputs, then each step's return value. Other
        options as ``node``."""
        return self._special(fn, LoopSpec(max_loops, on_max_loops, finalize), options)

    def _special(
        self, fn: Callable[..., Any] | None, spec: MapSpec | LoopSpec, options: NodeOptions
    ) -> AnyNode | Callable[[Callable[..., Any]], AnyNode]:
        """``node`` for a map or loop: the same handle, with its kind and settings."""

        def add(fn: Callable[..., Any]) -> AnyNode:
            node = self.node(fn, **options)
            if isinstance(spec, MapSpec):
                node.kind, node.map = "map", spec
            else:
                node.kind, node.loop = "loop", spec
            return node

        return add if fn is None else add(fn)


def _name_of(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__name__", "") or type(fn).__name__)
