"""Workflow definitions: ``Workflow``, ``Node`` handles, Choice branches. Pure: no async, no user
code runs here. Definitions are only recorded; ``validate()`` (``_plan.compile_plan``) checks them
all and compiles the plan that ``run`` executes."""

from __future__ import annotations

import inspect
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, Unpack, overload

from ._conditions import Expr
from ._models import ErrorHandling, Event, RunResult, WorkflowRetry

if TYPE_CHECKING:
    from ._plan import Plan
    from ._store import RunStore
    from ._stream import EventStream

Trigger = Literal["all", "any", "always", "on_failure"]
Executor = Literal["thread", "process"]
F = TypeVar("F", bound=Callable[..., Any])
OptionCondition = Expr | Callable[[dict[str, Any]], bool] | None


class NodeOptions(TypedDict, total=False):
    """The options ``Workflow.node`` takes, shared by ``map`` and ``loop``."""

    name: str | None
    depends: Sequence[Node | Branch | str]
    inputs: Mapping[str, Any] | None
    error_handling: ErrorHandling | Mapping[str, Any] | None
    trigger: Trigger
    executor: Executor


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


class Node:
    """A handle on a node of a workflow, usable in another node's ``depends``.

    Attributes: ``name``, ``fn`` (None for a Choice), ``depends``, ``inputs``, ``error_handling``,
    ``trigger``, ``executor``, ``kind`` (``"task"``, ``"choice"``, ``"map"`` or ``"loop"``).
    """

    kind: Literal["task", "choice", "map", "loop"] = "task"

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any] | None,
        *,
        depends: Sequence[Node | Branch | str],
        inputs: Mapping[str, Any] | None,
        error_handling: ErrorHandling | Mapping[str, Any] | None,
        trigger: Trigger,
        executor: Executor,
    ) -> None:
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class Choice(Node):
    """A Choice node: routes to the first option whose condition holds. ``choice["ok"]`` is the
    branch to name in ``depends``; its output is the chosen option's name."""

    kind: Literal["choice"] = "choice"

    def __init__(self, name: str, options: Mapping[str, OptionCondition], **rest: Any) -> None:
        super().__init__(name, None, trigger="all", executor="thread", inputs=None, **rest)
        self.options = options

    def __getitem__(self, option: str) -> Branch:
        return Branch(self.name, option)


class Workflow:
    """A DAG of nodes; ``await wf.run(input)`` executes it.

    Args:
        name: the workflow's name (in results, events and logs).
        output: the run's output mapping, resolved like node inputs; without one the output is the
            dict of the sink nodes' outputs.
        retry: workflow-level retry of a failed run.
        max_concurrency: how many nodes may run at once (None: no cap).
        rng: the random source for retry jitter (inject a seeded one for reproducible waits).
        store: where runs are kept durably (``flowrt.SQLiteStore(path)``); None: in memory only.
    """

    def __init__(
        self,
        name: str,
        *,
        output: Mapping[str, Any] | None = None,
        retry: WorkflowRetry | None = None,
        max_concurrency: int | None = None,
        rng: random.Random | None = None,
        store: RunStore | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.output = output
        self.retry = retry or WorkflowRetry()
        self.max_concurrency = max_concurrency
        self.rng = rng or random.Random()
        self._nodes: list[Node] = []
        self._plan: Plan | None = None
        self.listeners: list[Callable[[Event], None]] = []

    def add_listener(self, listener: Callable[[Event], None]) -> Callable[[Event], None]:
        """Call ``listener(event)`` for every event of every run of this workflow, synchronously,
        as it happens (usable as a decorator). A listener that raises is logged (stdlib logger
        ``flowrt``) and never breaks the run.

        Raises:
            TypeError: ``listener`` is an ``async def`` function (use ``wf.stream()`` to await).
        """
        if inspect.iscoroutinefunction(listener):
            raise TypeError(
                f"listener {listener!r} is async: listeners are called synchronously as events "
                "happen; use `async for event in wf.stream(...)` to await per event"
            )
        self.listeners.append(listener)
        return listener

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        """Stop calling ``listener``.

        Raises:
            ValueError: it was not added.
        """
        self.listeners.remove(listener)

    @property
    def nodes(self) -> dict[str, Node]:
        """The nodes by name, in the order they were added."""
        return {node.name: node for node in self._nodes}

    def _add(self, node: Node) -> Node:
        self._nodes.append(node)
        self._plan = None
        return node

    @overload
    def node(self, fn: F, **options: Unpack[NodeOptions]) -> Node: ...
    @overload
    def node(self, fn: None = None, **options: Unpack[NodeOptions]) -> Callable[[F], Node]: ...
    def node(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        depends: Sequence[Node | Branch | str] = (),
        inputs: Mapping[str, Any] | None = None,
        error_handling: ErrorHandling | Mapping[str, Any] | None = None,
        trigger: Trigger = "all",
        executor: Executor = "thread",
    ) -> Node | Callable[[F], Node]:
        """Add a node running ``fn`` (async on the loop; sync in a worker thread or process).

        Usable as ``@wf.node``, ``@wf.node(...)`` or ``wf.node(fn, ...)``; returns a ``Node``.
        Definitions are checked by ``validate()`` (and so by ``run``).
        """

        def add(fn: Callable[..., Any]) -> Node:
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
        depends: Sequence[Node | Branch | str] = (),
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
        fn: F,
        *,
        items: Any,
        concurrency: int | None = None,
        tolerated_failures: int | float | None = None,
        **options: Unpack[NodeOptions],
    ) -> Node: ...
    @overload
    def map(
        self,
        fn: None = None,
        *,
        items: Any,
        concurrency: int | None = None,
        tolerated_failures: int | float | None = None,
        **options: Unpack[NodeOptions],
    ) -> Callable[[F], Node]: ...
    def map(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        items: Any,
        concurrency: int | None = None,
        tolerated_failures: int | float | None = None,
        **options: Unpack[NodeOptions],
    ) -> Node | Callable[[F], Node]:
        """Add a node that calls ``fn`` once per item (its first parameter), at most
        ``concurrency`` at a time, each item under the node's error handling. Its output is the
        list of per-item envelopes ``{status, output, error}`` in item order. Other options as
        ``node``."""
        return self._special(fn, MapSpec(items, concurrency, tolerated_failures), options)

    @overload
    def loop(
        self,
        fn: F,
        *,
        max_loops: int,
        on_max_loops: Literal["raise", "return"] = "raise",
        finalize: Callable[[Any], Any] | None = None,
        **options: Unpack[NodeOptions],
    ) -> Node: ...
    @overload
    def loop(
        self,
        fn: None = None,
        *,
        max_loops: int,
        on_max_loops: Literal["raise", "return"] = "raise",
        finalize: Callable[[Any], Any] | None = None,
        **options: Unpack[NodeOptions],
    ) -> Callable[[F], Node]: ...
    def loop(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        max_loops: int,
        on_max_loops: Literal["raise", "return"] = "raise",
        finalize: Callable[[Any], Any] | None = None,
        **options: Unpack[NodeOptions],
    ) -> Node | Callable[[F], Node]:
        """Add an agent-style loop: ``fn(state)`` is called until it returns ``Final(value)``, the
        state being first the dict of the node's inputs, then each step's return value. Other
        options as ``node``."""
        return self._special(fn, LoopSpec(max_loops, on_max_loops, finalize), options)

    def _special(
        self, fn: Callable[..., Any] | None, spec: MapSpec | LoopSpec, options: NodeOptions
    ) -> Node | Callable[[F], Node]:
        """``node`` for a map or loop: the same handle, with its kind and settings."""

        def add(fn: Callable[..., Any]) -> Node:
            node = self.node(fn, **options)
            if isinstance(spec, MapSpec):
                node.kind, node.map = "map", spec
            else:
                node.kind, node.loop = "loop", spec
            return node

        return add if fn is None else add(fn)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workflow:
        """Build a workflow from plain data (the format of ``flowrt schema``) and validate it.

        Raises:
            DefinitionError: names the place in the data (``nodes[2].error_handling.backoff_rate``)
                and what is wrong there, including a ``call`` whose module or attribute is missing.
        """
        from ._loader import from_dict

        return from_dict(data)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Workflow:
        """Build a workflow from a YAML (or JSON) file; see ``from_dict``.

        Raises:
            DefinitionError: the file cannot be read or parsed, or its content is invalid.
        """
        from ._loader import from_yaml

        return from_yaml(path)

    def to_dict(self) -> dict[str, Any]:
        """The workflow as plain data that ``from_dict`` reads back.

        Raises:
            DefinitionError: a node cannot be written as data (a lambda or local function, a
                callable condition or ``retry_on`` predicate).
        """
        from ._loader import to_dict

        return to_dict(self)

    def validate(self) -> None:
        """Check the whole definition.

        Raises:
            DefinitionError: names the node, the field and what is wrong (a cycle, an unknown or
                duplicate name, a malformed selector or template, a bad option, ...).
        """
        self.compiled()

    def compiled(self) -> Plan:
        """The validated, compiled plan (cached until a node is added)."""
        if self._plan is None:
            from ._plan import compile_plan

            self._plan = compile_plan(self)
        return self._plan

    def mermaid(self) -> str:
        """The workflow as a Mermaid flowchart (Choice options label their arrows).

        Raises:
            DefinitionError: the workflow is invalid.
        """
        from ._diagram import mermaid

        return mermaid(self.compiled())

    def stages(self) -> list[list[str]]:
        """The plan: node names grouped into stages that can start together.

        Raises:
            DefinitionError: the workflow is invalid.
        """
        from ._diagram import stages

        return stages(self.compiled())

    async def run(
        self,
        input: Any = None,
        *,
        timeout: float | None = None,
        run_id: str | None = None,
        store: RunStore | None = None,
    ) -> RunResult:
        """Run the workflow once (plus workflow-level retries) and return its result.

        ``input`` is the run input (``$.input``): plain data; a pydantic model is taken as its
        ``model_dump()``. Node failures never raise: they are in the result. ``timeout`` is a
        deadline for each run attempt: at expiry running nodes are cancelled and the run fails.
        ``run_id`` names the run (a new uuid4 hex by default). With a ``store`` (or the
        workflow's) the run is durable: its row (input, status ``running``, owner) is committed
        before the first node starts, each node's envelope is stored as it finishes, and it can
        be resumed; node outputs must then be strict JSON (else the node fails with
        ``OutputError``). A ``run_id`` is then an idempotency key: a stored run that ended is
        returned as it was stored (nothing runs); one that was interrupted or cancelled is
        resumed (its stored input is used).

        Raises:
            DefinitionError: the workflow is invalid.
            InputError: a durable run's input is not strict JSON.
            RunInProgress: a durable run with this id is being executed (a live owner).
            FlowError: the stored run ``run_id`` belongs to another workflow.
        """
        from ._run import run

        return await run(self, input, timeout=timeout, run_id=run_id, store=store)

    async def resume(
        self, run_id: str, *, store: RunStore | None = None, timeout: float | None = None
    ) -> RunResult:
        """Finish a stored run: nodes that succeeded keep their stored outputs and do not run
        again; a node stored in a retry wait continues at its next attempt when due; every
        other node runs (a node that was running when the process died runs again:
        at-least-once). A run that succeeded is returned as stored. Returns the run's result.

        Raises:
            FlowError: no store, no such run, or a run of another workflow.
            RunInProgress: a live process is executing the run.
        """
        from ._run import resume

        return await resume(self, run_id, store=store, timeout=timeout)

    def run_sync(self, input: Any = None, *, timeout: float | None = None) -> RunResult:
        """``run`` for scripts: starts an event loop with ``anyio.run``."""
        import anyio

        return anyio.run(lambda: self.run(input, timeout=timeout))

    def stream(self, input: Any = None, *, timeout: float | None = None) -> EventStream:
        """Run the workflow, yielding each ``Event`` as it happens; leaving the loop early
        cancels the run. The last event, ``run.finished``, carries the RunResult.

        Raises:
            DefinitionError: the workflow is invalid (raised here, before iterating).
        """
        from ._stream import EventStream

        return EventStream(self, input, timeout)


def _name_of(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__name__", "") or type(fn).__name__)
