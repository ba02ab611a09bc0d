"""Validation: check a Workflow's definitions and compile them into a ``Plan`` of indexed nodes
with precompiled input bindings, so that running a node costs O(its own edges)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast, get_args

from ._backoff import wait_before_retry
from ._conditions import CompiledCondition, Expr, names_of
from ._errors import DefinitionError, InputError
from ._graph import Branch, Choice, Executor, Node, Trigger
from ._models import ErrorHandling, ErrorInfo
from ._resolve import NAME, Value, compile_value, is_dynamic, view

if TYPE_CHECKING:
    from ._graph import Workflow

_NAME = re.compile(NAME)
_NO_ARGS: tuple[Any, ...] = ()
_NO_KWARGS: Mapping[str, Any] = {}  # never mutated: ``**`` unpacking copies it (a proxy is slower)
TRIGGERS = frozenset(get_args(Trigger))
EXECUTORS = frozenset(get_args(Executor))


@dataclass(slots=True)
class PlanNode:
    """One node, compiled. ``edges`` are (dependency index, Choice option or None)."""

    index: int
    name: str
    node: Node
    policy: ErrorHandling
    trigger: str
    is_async: bool = False
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
    invoke: Callable[..., Awaitable[Any]] | None = None  # set by _kinds.invoker on first use
    retry_types: tuple[type[BaseException], ...] | None = None  # retry_on, when not a predicate
    waits: tuple[float, ...] | None = None  # the wait before each retry, when there is no jitter
    last_error: ErrorInfo | None = None  # the node's latest error, shared by the next like it

    @property
    def raises(self) -> bool:
        """Whether a failure of this node blocks its dependents and fails the run."""
        return self.policy.behavior == "raise"

    def data(self, store: Mapping[str, Any]) -> Mapping[str, Any]:
        """What this node's selectors read: the store, or only its dependencies' part of it."""
        return view(store, self.visible) if self.needs_view else store

    def arguments(self, store: Mapping[str, Any]) -> tuple[Sequence[Any], Mapping[str, Any]]:
        """Resolve the function's arguments (shared empty ones for a function without any).

        Raises:
            InputError: a parameter has no value, or a template failed to render.
        """
        if not (self.positional or self.keywords or self.from_input):
            return _NO_ARGS, _NO_KWARGS
        data = self.data(store)
        args = [value(data) for _, value in self.positional]
        kwargs = {name: value(data) for name, value in self.keywords}
        if self.from_input:
            given = store["input"]
            for name, required in self.from_input:
                if isinstance(given, dict) and name in given:
                    kwargs[name] = given[name]
                elif required:
                    raise InputError(
                        f"node {self.name!r}: parameter {name!r} has no value: not in its "
                        f"inputs, not in the run input ($.input.{name}), and no default"
                    )
        return args, kwargs


@dataclass(slots=True)
class Plan:
    """A validated workflow: nodes by index, roots, sinks and the compiled output mapping."""

    nodes: list[PlanNode]
    index: dict[str, int]
    roots: list[int]
    sinks: list[int]
    output: dict[str, Value] | None
    cache: dict[str, Any] = field(
        default_factory=dict
    )  # derived once per plan (e.g. its data form)


def compile_plan(wf: Workflow) -> Plan:
    """Check every definition of ``wf`` and compile it.

    Raises:
        DefinitionError: the first problem found, naming the node and field.
    """
    index = _check_names(wf._nodes)
    known = frozenset(index) | {"input"}
    nodes = [_compile_node(i, node, known, wf) for i, node in enumerate(wf._nodes)]
    dependents: list[list[int]] = [[] for _ in nodes]
    for pn in nodes:
        _link(pn, index, nodes)
        for dep in pn.deps:
            dependents[dep].append(pn.index)
    for pn, after in zip(nodes, dependents, strict=True):
        pn.dependents = tuple(after)
    _check_acyclic(nodes)
    output = None
    if wf.output is not None:
        output = {
            key: _value(spec, known, None, f"output.{key}") for key, spec in wf.output.items()
        }
    roots = [pn.index for pn in nodes if not pn.deps]
    sinks = [pn.index for pn in nodes if not pn.dependents]
    if wf.max_concurrency is not None and (
        not isinstance(wf.max_concurrency, int) or wf.max_concurrency < 1
    ):
        raise DefinitionError(
            f"must be an int >= 1, got {wf.max_concurrency!r}", field="max_concurrency"
        )
    return Plan(nodes, index, roots, sinks, output)


def _check_names(nodes: list[Node]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if not isinstance(node.name, str) or not _NAME.fullmatch(node.name):
            raise DefinitionError(
                f"invalid name {node.name!r}: use letters, digits, '_' and '-', not starting with "
                "a digit (pass name=... for lambdas and partials)",
                field="name",
            )
        if node.name == "input":
            raise DefinitionError(
                "'input' is reserved for the run input", node="input", field="name"
            )
        if node.name in index:
            raise DefinitionError("duplicate node name", node=node.name, field="name")
        index[node.name] = i
    return index


def _compile_node(i: int, node: Node, known: frozenset[str], wf: Workflow) -> PlanNode:
    policy = _policy(node)
    if node.trigger not in TRIGGERS:
        raise DefinitionError(
            f"must be one of {sorted(TRIGGERS)}, got {node.trigger!r}",
            node=node.name,
            field="trigger",
        )
    if node.executor not in EXECUTORS:
        raise DefinitionError(
            f"must be one of {sorted(EXECUTORS)}, got {node.executor!r}",
            node=node.name,
            field="executor",
        )
    pn = PlanNode(i, node.name, node, policy, node.trigger)
    if isinstance(policy.retry_on, tuple):
        pn.retry_types = policy.retry_on
    if not policy.jitter:
        pn.waits = tuple(wait_before_retry(policy, k) for k in range(policy.max_retries))
    if isinstance(node, Choice):
        pn.options = _options(node, known)
    else:
        _bind(pn, node, known)
    if node.map is not None:
        _map_settings(pn, node, known)
    if node.loop is not None:
        _loop_settings(node)
    return pn


_DEFAULT_POLICY = ErrorHandling()  # frozen: every node without a policy shares this one


def _policy(node: Node) -> ErrorHandling:
    given = node.error_handling
    if given is None:
        return _DEFAULT_POLICY
    if isinstance(given, ErrorHandling):
        return given
    if isinstance(given, Mapping):
        try:
            return ErrorHandling(**given)
        except DefinitionError as exc:  # field "ErrorHandling.x" -> "error_handling.x"
            field = "error_handling." + (exc.field or "").partition(".")[2]
            raise DefinitionError(exc.reason, node=node.name, field=field) from None
    raise DefinitionError(
        f"must be an ErrorHandling or a dict, got {type(given).__name__}",
        node=node.name,
        field="error_handling",
    )


def _value(spec: Any, known: frozenset[str], node: str | None, field: str) -> Value:
    try:
        return compile_value(spec, known)
    except DefinitionError as exc:
        raise DefinitionError(exc.reason, node=node, field=field) from None


def _bind(pn: PlanNode, node: Node, known: frozenset[str]) -> None:
    """Match the function's parameters with the node's inputs."""
    fn = node.fn
    if not callable(fn):
        raise DefinitionError(f"must be callable, got {fn!r}", node=node.name, field="fn")
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise DefinitionError(
            "a generator function cannot be a node: return the value (a list, say) instead",
            node=node.name,
            field="fn",
        )
    pn.is_async = _is_async(fn)
    if node.executor == "process" and pn.is_async:
        raise DefinitionError(
            "executor='process' needs a plain (sync) function", node=node.name, field="executor"
        )
    inputs = {
        key: _value(spec, known, node.name, f"inputs.{key}") for key, spec in node.inputs.items()
    }
    if node.loop is not None:  # the step takes one argument, the state: the inputs dict
        pn.keywords = tuple(inputs.items())
        return
    params = _parameters(fn)
    if params is None:  # no signature to read: pass every input by keyword
        pn.keywords = tuple(inputs.items())
        return
    if node.map is not None:
        if not params or params[0].kind not in _POSITIONAL:
            raise DefinitionError(
                "a map function takes the item as its first parameter", node=node.name, field="fn"
            )
        pn.item_param = params[0].name
        params = params[1:]
    _match(pn, node.name, params, inputs)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def _match(
    pn: PlanNode, name: str, params: list[inspect.Parameter], inputs: dict[str, Value]
) -> None:
    positional: list[tuple[str, Value]] = []
    keywords: list[tuple[str, Value]] = []
    from_input: list[tuple[str, bool]] = []
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name in inputs:
            bucket = positional if param.kind is param.POSITIONAL_ONLY else keywords
            bucket.append((param.name, inputs.pop(param.name)))
        elif param.kind is param.POSITIONAL_ONLY:
            raise DefinitionError(
                f"positional-only parameter {param.name!r} needs an entry in inputs",
                node=name,
                field="inputs",
            )
        else:
            from_input.append((param.name, param.default is param.empty))
    if inputs and not any(param.kind is param.VAR_KEYWORD for param in params):
        key = next(iter(inputs))
        raise DefinitionError(
            f"{key!r} is not a parameter of the function", node=name, field=f"inputs.{key}"
        )
    keywords.extend(inputs.items())
    pn.positional, pn.keywords, pn.from_input = (
        tuple(positional),
        tuple(keywords),
        tuple(from_input),
    )


def _is_async(fn: Callable[..., Any]) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with an async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def _options(
    node: Choice, known: frozenset[str]
) -> tuple[tuple[str, CompiledCondition | None], ...]:
    if not isinstance(node.options, Mapping) or not node.options:
        raise DefinitionError(
            "a Choice needs a non-empty dict of options", node=node.name, field="options"
        )
    compiled: list[tuple[str, CompiledCondition | None]] = []
    last = len(node.options) - 1
    for position, (option, condition) in enumerate(node.options.items()):
        where = f"options.{option}"
        if condition is None:
            if position != last:
                raise DefinitionError(
                    "the default option (None) must be last", node=node.name, field=where
                )
            compiled.append((option, None))
        elif isinstance(condition, Expr):
            try:
                compiled.append((option, condition.compile(known)))
            except DefinitionError as exc:
                raise DefinitionError(exc.reason, node=node.name, field=where) from None
        elif callable(condition):
            compiled.append((option, cast(CompiledCondition, condition)))
        else:
            raise DefinitionError(
                f"must be a Condition, a callable or None, got {condition!r}",
                node=node.name,
                field=where,
            )
    return tuple(compiled)


def _map_settings(pn: PlanNode, node: Node, known: frozenset[str]) -> None:
    spec = node.map
    assert spec is not None
    if not is_dynamic(spec.items) and not isinstance(spec.items, list | tuple):
        raise DefinitionError(
            f"must be a selector or a list, got {spec.items!r}", node=node.name, field="items"
        )
    pn.items = _value(spec.items, known, node.name, "items")
    if spec.concurrency is not None and (
        not isinstance(spec.concurrency, int) or spec.concurrency < 1
    ):
        raise DefinitionError(
            f"must be an int >= 1, got {spec.concurrency!r}", node=node.name, field="concurrency"
        )
    tolerated = spec.tolerated_failures
    if tolerated is not None and not (
        (isinstance(tolerated, int) and tolerated >= 0)
        or (isinstance(tolerated, float) and 0 < tolerated < 1)
    ):
        raise DefinitionError(
            f"must be an int >= 0 or a float in (0, 1), got {tolerated!r}",
            node=node.name,
            field="tolerated_failures",
        )


def _loop_settings(node: Node) -> None:
    spec = node.loop
    assert spec is not None
    if not isinstance(spec.max_loops, int) or spec.max_loops < 1:
        raise DefinitionError(
            f"must be an int >= 1, got {spec.max_loops!r}", node=node.name, field="max_loops"
        )
    if spec.on_max_loops not in ("raise", "return"):
        raise DefinitionError(
            f"must be 'raise' or 'return', got {spec.on_max_loops!r}",
            node=node.name,
            field="on_max_loops",
        )
    if spec.finalize is not None and not callable(spec.finalize):
        raise DefinitionError(
            f"must be callable, got {spec.finalize!r}", node=node.name, field="finalize"
        )


def _link(pn: PlanNode, index: dict[str, int], nodes: list[PlanNode]) -> None:
    """Turn depends and the names read by inputs/conditions/items into edges."""
    edges = {_edge(ref, pn.name, index, nodes) for ref in pn.node.depends}
    values = [value for _, value in (*pn.positional, *pn.keywords)]
    read = set().union(*(value.names for value in values))
    read |= set().union(*(names_of(test) for _, test in pn.options if test is not None))
    if pn.items is not None:
        read |= pn.items.names
    edges |= {(index[name], None) for name in read if name != "input"}
    pn.edges = tuple(sorted(edges, key=lambda edge: (edge[0], edge[1] or "")))
    pn.deps = tuple(sorted({dep for dep, _ in edges}))
    pn.visible = ("input", *(nodes[dep].name for dep in pn.deps))
    pn.needs_view = (
        any(value.needs_view for value in values)
        or bool(pn.options)
        or (pn.items is not None and pn.items.needs_view)
    )


def _edge(
    ref: Any, name: str, index: dict[str, int], nodes: list[PlanNode]
) -> tuple[int, str | None]:
    if isinstance(ref, Node):
        ref = (
            ref.name
            if nodes[index.get(ref.name, 0)].node is ref
            else f"<{ref.name} of another workflow>"
        )
    option = None
    if isinstance(ref, Branch):
        ref, option = ref.choice, ref.option
    elif isinstance(ref, str) and "." in ref:
        ref, option = ref.split(".", 1)
    if not isinstance(ref, str) or ref not in index:
        raise DefinitionError(f"unknown dependency {ref!r}", node=name, field="depends")
    target = nodes[index[ref]]
    if option is not None:
        if not isinstance(target.node, Choice):
            raise DefinitionError(
                f"{ref!r} is not a Choice, so it has no option {option!r}",
                node=name,
                field="depends",
            )
        if option not in target.node.options:
            raise DefinitionError(
                f"Choice {ref!r} has no option {option!r}", node=name, field="depends"
            )
    return index[ref], option


def _check_acyclic(nodes: list[PlanNode]) -> None:
    """Kahn's algorithm; on a cycle, report its path."""
    remaining = [len(pn.deps) for pn in nodes]
    ready = [pn.index for pn in nodes if not pn.deps]
    while ready:
        for dependent in nodes[ready.pop()].dependents:
            remaining[dependent] -= 1
            if not remaining[dependent]:
                ready.append(dependent)
    stuck = {i for i, count in enumerate(remaining) if count}
    if not stuck:
        return
    path, current = [], min(stuck)
    while current not in path:
        path.append(current)
        current = next(dep for dep in nodes[current].deps if dep in stuck)
    cycle = [nodes[i].name for i in path[path.index(current) :]][::-1]
    cycle.append(cycle[0])
    raise DefinitionError(f"cycle: {' -> '.join(cycle)}", node=cycle[0], field="depends")
