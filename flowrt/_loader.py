"""Workflows as data: ``Workflow.from_dict`` / ``from_yaml`` / ``to_dict``.

The file format is a pydantic schema (``WorkflowFile``; ``flowrt schema`` prints its JSON Schema).
Nodes name their function as ``"package.module:function"``; errors name the place in the file:
``nodes[2].error_handling.backoff_rate: must be >= 1 (got 0.5)``.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import operator
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from ._conditions import Condition, Expr
from ._definition import Definition
from ._errors import DefinitionError
from ._executors import as_data, named
from ._files import (
    AllFile,
    AnyFile,
    ConditionData,
    ConditionFile,
    ErrorHandlingFile,
    NodeFile,
    WorkflowFile,
)
from ._limits import RateLimit, RunLimit
from ._loader_children import add_child, child_data
from ._models import ErrorHandling, WorkflowRetry, place, reason
from ._nodes import AnyNode, Choice, Node

D = TypeVar("D", bound=Definition)
L = TypeVar("L", RunLimit, RateLimit)


def load_call(ref: str, where: str) -> Any:
    """Import ``"package.module:attr"`` (a node handle there stands for its function).

    Raises:
        DefinitionError: the module cannot be imported, or has no such attribute.
    """
    module_name, _, attr = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise DefinitionError(
            f"cannot import module {module_name!r} ({exc})", field=where
        ) from None
    except Exception as exc:  # the module itself fails: a SyntaxError, an error at import
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise DefinitionError(
            f"importing module {module_name!r} failed ({detail})", field=where
        ) from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise DefinitionError(f"module {module_name!r} has no attribute {attr!r}", field=where)
        target = getattr(target, part)
    # A function decorated with @wf.node in its module is a Node handle there: take its function.
    return target.fn if isinstance(target, Node) and target.fn is not None else target


def _exception(name: str, where: str) -> type[BaseException]:
    found = load_call(name, where) if ":" in name else getattr(builtins, name, None)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise DefinitionError(f"{name!r} is not an exception class", field=where)
    return found


def _condition(data: ConditionData) -> Expr:
    if isinstance(data, ConditionFile):
        return Condition(data.path, data.op, data.value)
    if isinstance(data, AllFile):
        return functools.reduce(operator.and_, map(_condition, data.all))
    if isinstance(data, AnyFile):
        return functools.reduce(operator.or_, map(_condition, data.any))
    return ~_condition(data.not_)


def _policy(spec: ErrorHandlingFile | None, where: str) -> ErrorHandling | None:
    if spec is None:
        return None
    fields = spec.model_dump(exclude={"retry_on"}, exclude_unset=True)
    if spec.retry_on is not None:
        fields["retry_on"] = tuple(
            _exception(name, f"{where}.retry_on[{i}]") for i, name in enumerate(spec.retry_on)
        )
    return ErrorHandling(**fields)


def _add(wf: Definition, spec: NodeFile, where: str) -> None:
    options: dict[str, Any] = {
        "depends": spec.depends,
        "error_handling": _policy(spec.error_handling, f"{where}.error_handling"),
    }
    if spec.choice is not None:
        options_ = {key: None if c is None else _condition(c) for key, c in spec.choice.items()}
        wf.choice(spec.name, options_, **options)
        return
    if spec.wait is not None or spec.sleep is not None:
        _add_waiting(wf, spec, where, options)
        return
    if spec.workflow is not None:
        add_child(wf, spec, where, options, (from_dict, load_call, read_yaml))
    else:
        _add_call(wf, spec, where, options)
    if spec.rate_limit is not None:  # compiling refuses one on a kind that takes none
        wf.nodes[spec.name].rate_limit = _limits(spec.rate_limit, RateLimit)


def _add_call(wf: Definition, spec: NodeFile, where: str, options: dict[str, Any]) -> None:
    """A node that calls a function: a task, a map or a loop."""
    assert spec.call is not None
    fn = load_call(spec.call, f"{where}.call")
    options |= {
        "name": spec.name,
        "inputs": spec.inputs,
        "trigger": spec.trigger,
        "executor": named(spec.executor, f"{where}.executor"),
    }
    if spec.map is not None:
        node = wf.map(
            fn,
            items=spec.map.items,
            concurrency=spec.map.concurrency,
            tolerated_failures=spec.map.tolerated_failures,
            **options,
        )
    elif spec.loop is not None:
        finalize = (
            load_call(spec.loop.finalize, f"{where}.loop.finalize") if spec.loop.finalize else None
        )
        node = wf.loop(
            fn,
            max_loops=spec.loop.max_loops,
            on_max_loops=spec.loop.on_max_loops,
            finalize=finalize,
            **options,
        )
    else:
        node = wf.node(fn, **options)
    node.call = spec.call


def _add_waiting(wf: Definition, spec: NodeFile, where: str, options: dict[str, Any]) -> None:
    """A wait node (its schema imported from ``package.module:Model``, or a JSON Schema given
    inline) or a sleep node."""
    if spec.sleep is not None:
        if spec.error_handling is not None:
            raise DefinitionError("a sleep takes no error_handling", field=f"{where}.sleep")
        when = spec.sleep
        wf.sleep(spec.name, seconds=when.seconds, until=when.until, depends=spec.depends)
        return
    wait = spec.wait
    assert wait is not None
    schema: Any = wait.schema_
    if isinstance(schema, str):
        schema = load_call(schema, f"{where}.wait.schema")
    node = wf.wait(
        spec.name,
        signal=wait.signal,
        schema=schema,
        timeout_seconds=wait.timeout_seconds,
        trigger=spec.trigger,
        **options,
    )
    node.call = wait.schema_ if isinstance(wait.schema_, str) else None


def _limits(data: Any, kind: type[L]) -> L | list[L]:
    """A ``run_limit:`` or ``rate_limit:`` of a file (one, or a list) as limits."""
    if isinstance(data, list):
        return [kind(**item.model_dump()) for item in data]
    return kind(**data.model_dump())


def _limits_data(given: Any) -> Any:
    """Limits as a file holds them: one as a mapping, several as a list."""
    if isinstance(given, list | tuple):
        return [limit.to_dict() for limit in given]
    return given.to_dict()


def from_dict(data: Any, kind: type[D]) -> D:
    """Build a definition of class ``kind`` from plain data (unvalidated: compiling it checks
    the rest); see ``Workflow.from_dict``.

    Raises:
        DefinitionError: the data does not have the file format's shape, or a ``call`` cannot
            be imported.
    """
    try:
        spec = WorkflowFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DefinitionError(reason(first), field=place(first["loc"]) or "file") from None
    retry = WorkflowRetry(**spec.retry.model_dump()) if spec.retry else None
    for folder in reversed(spec.paths):  # where its call: modules import from
        if folder not in sys.path:
            sys.path.insert(0, folder)
    wf = kind(
        spec.name,
        output=spec.output,
        retry=retry,
        max_concurrency=spec.max_concurrency,
        fail_fast=spec.fail_fast,
    )
    wf.paths = list(spec.paths)
    wf.executor = named(spec.executor, "executor") or "thread"
    if spec.run_limit is not None:
        wf.run_limit = _limits(spec.run_limit, RunLimit)
    for i, node in enumerate(spec.nodes):
        _add(wf, node, f"nodes[{i}]")
    return wf


def located(exc: DefinitionError, definition: Definition) -> DefinitionError:
    """``exc`` (from compiling a definition loaded from data) placed in the data:
    ``nodes[2].inputs.x`` rather than ``node 'x'.inputs.x``."""
    index = next((i for i, node in enumerate(definition._nodes) if node.name == exc.node), None)
    if index is None:
        return exc
    placed = DefinitionError(
        f"{exc.reason} (node {exc.node!r})", field=f"nodes[{index}].{exc.field}"
    )
    placed.node = exc.node
    return placed


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The data of a YAML (or JSON) file.

    Raises:
        DefinitionError: the file cannot be read or is not YAML.
    """
    # optional: PyYAML is imported on first use (it is slow to import)
    import yaml

    file = Path(path)
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(f"cannot read {file}: {exc.strerror}", field="file") from None
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start}"
        raise DefinitionError(f"{file} is not UTF-8 text ({where})", field="file") from None
    except RecursionError:
        raise DefinitionError(f"{file} is nested too deep", field="file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise DefinitionError(f"{file} is not valid YAML{line}", field="file") from None


def _ref(fn: Any, node: str, call: str | None = None) -> str:
    if call is not None:
        return call
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "<none>")
    if not module or "<" in qualname:
        raise DefinitionError("its function has no importable name", node=node, field="fn")
    return f"{module}:{qualname}"


def _options_data(node: Choice) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, condition in node.options.items():
        if condition is not None and not isinstance(condition, Expr):
            raise DefinitionError(
                "a callable condition has no data form", node=node.name, field=f"options.{key}"
            )
        data[key] = None if condition is None else condition.to_data()
    return data


def _exception_name(cls: type[BaseException]) -> str:
    return (
        cls.__name__
        if getattr(builtins, cls.__name__, None) is cls
        else f"{cls.__module__}:{cls.__qualname__}"
    )


def _policy_data(node: AnyNode) -> dict[str, Any]:
    policy = node.error_handling
    if not isinstance(policy, ErrorHandling):
        policy = ErrorHandling(**(policy or {}))
    data: dict[str, Any] = policy.model_dump(exclude={"retry_on"}, exclude_defaults=True)
    if policy.retry_on != (Exception,):
        if not isinstance(policy.retry_on, tuple):
            raise DefinitionError(
                "a retry_on predicate has no data form",
                node=node.name,
                field="error_handling.retry_on",
            )
        data["retry_on"] = [_exception_name(cls) for cls in policy.retry_on]
    return data


def _node_data(node: AnyNode) -> dict[str, Any]:
    data: dict[str, Any] = {"name": node.name, **_kind_data(node)}
    if node.depends:
        data["depends"] = [ref.name if isinstance(ref, Node) else str(ref) for ref in node.depends]
    if node.inputs:
        data["inputs"] = dict(node.inputs)
    if node.error_handling is not None:
        data["error_handling"] = _policy_data(node)
    if node.trigger != "all":
        data["trigger"] = node.trigger
    if node.executor is not None:
        data["executor"] = as_data(node.executor, node.name)
    if node.rate_limit is not None:
        data["rate_limit"] = _limits_data(node.rate_limit)
    return data


def _kind_data(node: AnyNode) -> dict[str, Any]:
    """What makes the node what it is: its ``call`` (and map or loop), ``choice``, ``wait`` or
    ``sleep``."""
    if isinstance(node, Choice):
        return {"choice": _options_data(node)}
    if node.kind in ("wait", "sleep"):
        return _waiting_data(node)
    if node.sub is not None:
        return child_data(node)
    data: dict[str, Any] = {"call": _ref(node.fn, node.name, node.call)}
    if node.map is not None:
        data["map"] = {
            "items": node.map.items,
            "concurrency": node.map.concurrency,
            "tolerated_failures": node.map.tolerated_failures,
        }
    if node.loop is not None:
        data["loop"] = {"max_loops": node.loop.max_loops, "on_max_loops": node.loop.on_max_loops}
        if node.loop.finalize is not None:
            data["loop"]["finalize"] = _ref(node.loop.finalize, node.name)
    return data


def _waiting_data(node: AnyNode) -> dict[str, Any]:
    """A wait's or a sleep's settings, as the file gives them."""
    if node.sleep is not None:
        sleep = node.sleep
        return {
            "sleep": {"seconds": sleep.seconds} if sleep.until is None else {"until": sleep.until}
        }
    wait = node.wait
    assert wait is not None
    data: dict[str, Any] = {"signal": wait.signal}
    if wait.timeout_seconds is not None:
        data["timeout_seconds"] = wait.timeout_seconds
    if isinstance(wait.schema, Mapping):
        data["schema"] = dict(wait.schema)
    elif wait.schema is not None:
        data["schema"] = _ref(wait.schema, node.name, node.call)
    return {"wait": data}


def to_dict(wf: Definition) -> dict[str, Any]:
    """The workflow as plain data that ``from_dict`` reads back; see ``Workflow.to_dict``."""
    data: dict[str, Any] = {"name": wf.name}
    if wf.output is not None:
        data["output"] = dict(wf.output)
    if wf.retry != WorkflowRetry():
        data["retry"] = wf.retry.model_dump()
    if wf.max_concurrency is not None:
        data["max_concurrency"] = wf.max_concurrency
    if wf.fail_fast:
        data["fail_fast"] = True
    if wf.executor != "thread":
        data["executor"] = as_data(wf.executor, None)
    if wf.run_limit is not None:
        data["run_limit"] = _limits_data(wf.run_limit)
    if wf.paths:
        data["paths"] = list(wf.paths)
    data["nodes"] = [_node_data(node) for node in wf.nodes.values()]
    return data
