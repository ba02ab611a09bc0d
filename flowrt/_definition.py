"""Definitions: ``Definition``, the recorded workflow with its builders (``node``, ``choice``,
``map``, ``loop``) of the nodes ``_nodes`` defines. Pure: it imports nothing of the engine
and runs no user code. Definitions are only recorded here; ``_plan.compile_plan`` checks them
all and compiles the ``Plan`` that runs execute. ``Workflow`` (``_graph``) is a ``Definition``
that can run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import (
    Any,
    Literal,
    Unpack,
    overload,
)

from ._definition_waits import WaitingNodes
from ._executors import ExecutorSpec
from ._limits import RateLimit, RunLimit
from ._models import ErrorHandling, WorkflowRetry
from ._nodes import (
    AnyNode,
    Branch,
    Choice,
    LoopSpec,
    MapSpec,
    Node,
    NodeOptions,
    OptionCondition,
    P,
    R,
    SubSpec,
    Trigger,
)


class Definition(WaitingNodes):
    """A workflow as recorded: its name, output mapping, workflow-level retry, concurrency cap,
    run limits and nodes. Changing any of them (or a node) calls ``_changed`` (``Workflow``
    drops its compiled plan there)."""

    def __init__(
        self,
        name: str,
        *,
        output: Mapping[str, Any] | None = None,
        retry: WorkflowRetry | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        executor: ExecutorSpec = "thread",
        run_limit: RunLimit | Sequence[RunLimit] | None = None,
    ) -> None:
        self._name = name
        self._run_limit = run_limit
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
    def run_limit(self) -> RunLimit | Sequence[RunLimit] | None:
        """How many runs of one key run at once (``RunLimit``, or a list of them)."""
        return self._run_limit

    @run_limit.setter
    def run_limit(self, value: RunLimit | Sequence[RunLimit] | None) -> None:
        self._run_limit = value
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
        rate_limit: RateLimit | Sequence[RateLimit] | None = None,
    ) -> AnyNode | Callable[[Callable[..., Any]], AnyNode]:
        """Add a node running ``fn`` (async on the loop; sync in a worker thread or process).

        Usable as ``@wf.node``, ``@wf.node(...)`` or ``wf.node(fn, ...)``; returns a ``Node``.
        ``rate_limit``: each attempt first takes a permit of each (``RateLimit``).
        Definitions are checked by ``validate()`` (and so by ``run``).
        """

        def add(fn: Callable[..., Any]) -> AnyNode:
            node: AnyNode = Node(
                _name_of(fn) if name is None else name,
                fn,
                depends=depends,
                inputs=inputs,
                error_handling=error_handling,
                trigger=trigger,
                executor=executor,
            )
            node.rate_limit = rate_limit
            return self._add(node)

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
    @overload
    def map(
        self,
        fn: Definition,
        *,
        items: Any,
        concurrency: int | None = None,
        tolerated_failures: int | float | None = None,
        **options: Unpack[NodeOptions],
    ) -> AnyNode: ...
    def map(
        self,
        fn: Callable[..., Any] | Definition | None = None,
        *,
        items: Any,
        concurrency: int | None = None,
        tolerated_failures: int | float | None = None,
        **options: Unpack[NodeOptions],
    ) -> AnyNode | Callable[[Callable[..., Any]], AnyNode]:
        """Add a node that calls ``fn`` once per item (its first parameter), at most
        ``concurrency`` at a time, each item under the node's error handling. Its output is the
        list of per-item envelopes ``{status, output, error}`` in item order. Other options as
        ``node``. ``fn`` may be a workflow: one child run per item, the item as its input (its
        run id ``"<parent>:<node>[<i>]"``; see ``subworkflow``)."""
        spec = MapSpec(items, concurrency, tolerated_failures)
        if isinstance(fn, Definition):
            node = self._child(fn, options.pop("name", None), options)
            node.kind, node.map = "map", spec
            return node
        return self._special(fn, spec, options)

    def subworkflow(
        self,
        child: Definition,
        *,
        name: str | None = None,
        input: Any = None,
        run_id: str | None = None,
        depends: Sequence[AnyNode | Branch | str] = (),
        error_handling: ErrorHandling | Mapping[str, Any] | None = None,
        trigger: Trigger = "all",
        detach: bool = False,
        rate_limit: RateLimit | Sequence[RateLimit] | None = None,
    ) -> AnyNode:
        """Add a node that runs workflow ``child`` as a run of its own, linked to this one. Its
        input is ``input`` (a selector, template or dict of them, resolved like ``inputs``;
        default: this run's ``$.input``); its run id ``"<parent_run_id>:<node>"`` (or the
        ``run_id`` template over the node's input), the same across attempts, resumes and
        workers. The node's output is the child's output; the child's failure is the node's
        (its error type, ``child run '<id>' failed: ...``); a retry resumes the same child.
        ``detach``: the node succeeds once the child has started (output ``{"run_id": ...}``)
        and the child outlives this run. ``rate_limit``: each attempt (each start of the child)
        first takes a permit of each."""
        node = self._child(child, name, {"depends": depends, "trigger": trigger})
        node.error_handling, node.rate_limit = error_handling, rate_limit
        node.sub = SubSpec(child, input, run_id, detach)
        return node

    def _child(self, child: Definition, name: str | None, options: Any) -> AnyNode:
        """A node running workflow ``child`` (its function is the engine's, set when compiled)."""
        node: AnyNode = Node(
            child.name if name is None else name,
            None,
            depends=options.get("depends", ()),
            inputs=None,
            error_handling=options.get("error_handling"),
            trigger=options.get("trigger", "all"),
            executor=None,
        )
        node.kind, node.sub = "subworkflow", SubSpec(child)
        node.rate_limit = options.get("rate_limit")
        return self._add(node)

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
