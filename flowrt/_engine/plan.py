"""Validation: check a ``Definition`` and compile it into a ``Plan``: everything a run needs,
frozen (indexed nodes with precompiled input bindings and invokers, the output mapping, the
concurrency cap, the workflow-level retry), so that running a node costs O(its own edges).
Runs only read a plan; a changed definition is compiled into a new one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast, get_args

from .._bind import bind
from .._conditions import CompiledCondition, Expr, names_of
from .._dag import check_acyclic, check_names
from .._definition import Definition
from .._errors import DefinitionError
from .._executors import Executor, ExecutorName, ExecutorSpec
from .._models import ErrorHandling
from .._nodes import AnyNode, Choice, Trigger
from .._resolve import Value, compile_value, is_dynamic
from .backoff import wait_before_retry
from .children import child_function, child_inputs, compiling
from .edges import edge, share
from .invoke import invoker
from .limits import compile_limits
from .planned import Plan as Plan
from .planned import PlanNode as PlanNode
from .planned import starter
from .rates import check_shapes, compile_rates
from .waiting import waiting_node

TRIGGERS = frozenset(get_args(Trigger))
EXECUTORS = frozenset(get_args(ExecutorName))


def compile_plan(definition: Definition) -> Plan:
    """Check every part of ``definition`` and compile it.

    Raises:
        DefinitionError: the first problem found, naming the node and field.
    """
    index = check_names([node.name for node in definition._nodes])
    known = frozenset(index) | {"input"}
    sources, default = definition._nodes, definition.executor
    with compiling(definition):
        nodes = [_compile_node(i, node, known, default) for i, node in enumerate(sources)]
    _connect(nodes, sources, index)
    _rates(nodes, sources)
    _shortcuts(nodes)
    output = None
    if definition.output is not None:
        output = {
            key: _value(spec, known, None, f"output.{key}")
            for key, spec in definition.output.items()
        }
    cap = definition.max_concurrency
    if cap is not None and (not isinstance(cap, int) or cap < 1):
        raise DefinitionError(f"must be an int >= 1, got {cap!r}", field="max_concurrency")
    if not isinstance(definition.fail_fast, bool):
        raise DefinitionError(
            f"must be True or False, got {definition.fail_fast!r}", field="fail_fast"
        )
    roots = [pn.index for pn in nodes if not pn.deps]
    leaves = [pn.index for pn in nodes if not pn.dependents]
    retry, fail_fast = definition.retry, definition.fail_fast
    plan = Plan(definition.name, nodes, index, roots, leaves, output, cap, retry, fail_fast)
    if any(pn.kind in ("wait", "sleep") for pn in nodes):
        plan.signals = {pn.wait.signal: pn.wait.schema for pn in nodes if pn.wait is not None}
    plan.children = any(node.sub is not None for node in sources)
    plan.limits = compile_limits(definition.name, definition.run_limit)
    plan.indegrees = tuple(len(pn.deps) for pn in nodes)
    plan.leaf_names = tuple(nodes[i].name for i in leaves)
    return plan


def _shortcuts(nodes: list[PlanNode]) -> None:
    """What the scheduler's shortcuts read: a task node without retries, timeout or rate limit
    is ``direct`` (its one attempt is awaited by the scheduler itself, started by ``starter``);
    a node with one dependency, not a Choice option, that runs when it succeeds is ``lone``
    (a chain's next node: released without settling), and its dependency's ``after``."""
    for pn in nodes:
        plain = pn.timeout is None and not pn.rates and pn.policy.max_retries == 0
        pn.direct = pn.kind == "task" and plain
        if pn.direct:
            pn.start = starter(pn)
        lone = len(pn.edges) == 1 and pn.edges[0][1] is None
        pn.lone = lone and pn.trigger in ("all", "any", "always")
    for pn in nodes:
        if len(pn.dependents) == 1 and nodes[pn.dependents[0]].lone:
            pn.after = pn.dependents[0]


def _rates(nodes: list[PlanNode], sources: list[AnyNode]) -> None:
    """Compile each node's rate limits (their keys read the input and the node's dependencies).

    Raises:
        DefinitionError: a rate limit on a Choice, wait or sleep node; see ``compile_rates``
            and ``check_shapes``.
    """
    for pn, node in zip(nodes, sources, strict=True):
        if node.rate_limit is None:
            continue
        if pn.kind in ("choice", "wait", "sleep"):
            why = "only a task, map, loop or sub-workflow node takes a rate limit"
            raise DefinitionError(why, node=pn.name, field="rate_limit")
        known = {"input", *(nodes[dep].name for dep in pn.deps)}
        pn.rates = compile_rates(pn.name, node.rate_limit, known)
    check_shapes([(pn.name, pn.rates) for pn in nodes if pn.rates])


def _connect(nodes: list[PlanNode], sources: list[AnyNode], index: dict[str, int]) -> None:
    """Give every node its edges and its dependents.

    Raises:
        DefinitionError: an unknown dependency, or a cycle.
    """
    shared: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # equal tuples, kept once (fan-outs)
    dependents: list[list[int]] = [[] for _ in nodes]
    for pn, node in zip(nodes, sources, strict=True):
        _link(pn, node.depends, index, nodes, sources, shared)
        for dep in pn.deps:
            dependents[dep].append(pn.index)
    for pn, after in zip(nodes, dependents, strict=True):
        pn.dependents = share(shared, tuple(after))
    check_acyclic(
        [pn.name for pn in nodes], [pn.deps for pn in nodes], [pn.dependents for pn in nodes]
    )


def _executor(node: AnyNode, default: ExecutorSpec) -> ExecutorSpec:
    """Where the node's function runs: its own executor, else the workflow's.

    Raises:
        DefinitionError: neither ``"thread"``, ``"process"`` nor an ``Executor``.
    """
    executor = default if node.executor is None else node.executor
    if isinstance(executor, str) and executor in EXECUTORS:
        return executor
    if not isinstance(executor, str) and isinstance(executor, Executor):
        return executor
    raise DefinitionError(
        f"must be one of {sorted(EXECUTORS)} or an Executor (an object with an async call()), "
        f"got {executor!r}",
        node=node.name,
        field="executor",
    )


def _compile_node(
    i: int, node: AnyNode, known: frozenset[str], default: ExecutorSpec = "thread"
) -> PlanNode:
    policy = _policy(node)
    if node.trigger not in TRIGGERS:
        raise DefinitionError(
            f"must be one of {sorted(TRIGGERS)}, got {node.trigger!r}",
            node=node.name,
            field="trigger",
        )
    executor = _executor(node, default)
    pn = PlanNode(i, node.name, node.kind, policy, node.trigger, node.fn, executor)
    pn.map, pn.loop, pn.timeout = node.map, node.loop, policy.timeout_seconds
    if isinstance(policy.retry_on, tuple):
        pn.retry_types = policy.retry_on
    if not policy.jitter:
        pn.waits = tuple(wait_before_retry(policy, k) for k in range(policy.max_retries))
    if isinstance(node, Choice):
        pn.options = _options(node, known)
    elif node.kind in ("wait", "sleep"):
        _function(pn, node, known, waiting_node(pn, node))
    elif node.sub is not None:
        inputs = child_inputs(node, known)
        pn.fn = child_function(node.sub, mapped=node.map is not None)
        _function(pn, node, known, inputs)
    else:
        _function(pn, node, known)
    if node.map is not None:
        _map_settings(pn, node, known)
    if node.loop is not None:
        _loop_settings(node)
    return pn


def _function(
    pn: PlanNode, node: AnyNode, known: frozenset[str], inputs: Mapping[str, Any] | None = None
) -> None:
    """Bind a node's function (``pn.fn``) to its inputs (``inputs``, else the node's) and
    build its invoker."""
    given = node.inputs if inputs is None else inputs
    compiled = {key: _value(spec, known, node.name, f"inputs.{key}") for key, spec in given.items()}
    binding = bind(node, compiled, pn.fn)
    pn.is_async, pn.item_param = binding.is_async, binding.item_param
    pn.positional, pn.keywords = binding.positional, binding.keywords
    pn.from_input = binding.from_input
    pn.in_thread = not pn.is_async and pn.executor == "thread"
    assert pn.fn is not None
    policy = pn.policy
    pn.invoke = invoker(
        pn.fn, pn.is_async, pn.executor, policy.timeout_seconds, policy.max_retries + 1
    )
    if pn.executor == "process" and not pn.is_async:
        pn.timeout = None  # the process invoker times the call once its worker has started


_DEFAULT_POLICY = ErrorHandling()  # frozen: every node without a policy shares this one


def _policy(node: AnyNode) -> ErrorHandling:
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


def _map_settings(pn: PlanNode, node: AnyNode, known: frozenset[str]) -> None:
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


def _loop_settings(node: AnyNode) -> None:
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


def _link(
    pn: PlanNode,
    depends: Sequence[Any],
    index: dict[str, int],
    nodes: list[PlanNode],
    sources: list[AnyNode],
    shared: dict[tuple[Any, ...], tuple[Any, ...]],
) -> None:
    """Turn depends and the names read by inputs/conditions/items into edges."""
    edges = {edge(ref, pn.name, index, sources) for ref in depends}
    values = [value for _, value in (*pn.positional, *pn.keywords)]
    read = set().union(*(value.names for value in values))
    read |= set().union(*(names_of(test) for _, test in pn.options if test is not None))
    if pn.items is not None:
        read |= pn.items.names
    edges |= {(index[name], None) for name in read if name != "input"}
    pn.edges = share(shared, tuple(sorted(edges, key=lambda edge: (edge[0], edge[1] or ""))))
    pn.deps = share(shared, tuple(sorted({dep for dep, _ in edges})))
    pn.visible = share(shared, ("input", *(nodes[dep].name for dep in pn.deps)))
    pn.needs_view = (
        any(value.needs_view for value in values)
        or bool(pn.options)
        or (pn.items is not None and pn.items.needs_view)
    )
