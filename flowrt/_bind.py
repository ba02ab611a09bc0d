"""Binding a node's function to its inputs: which parameter takes which compiled input value,
positionally or by keyword, and which come from the run input (``$.input.<param>``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._errors import DefinitionError
from ._nodes import AnyNode
from ._resolve import Value


@dataclass(slots=True)
class Binding:
    """How a node's function is called: ``is_async``; the map item's parameter; the
    positional-only and keyword parameters with their values; the parameters taken from the
    run input, each with whether it is required (no default)."""

    is_async: bool
    item_param: str | None = None
    positional: tuple[tuple[str, Value], ...] = ()
    keywords: tuple[tuple[str, Value], ...] = ()
    from_input: tuple[tuple[str, bool], ...] = ()


def bind(node: AnyNode, inputs: dict[str, Value], fn: Any = None) -> Binding:
    """Match the function's parameters with the node's compiled ``inputs``.

    Raises:
        DefinitionError: not a callable, a generator, an async function for a process, a map
            function without an item parameter, an input that is no parameter, a positional-only
            parameter without an input.
    """
    fn = node.fn if fn is None else fn  # (a wait or sleep node: the engine's function)
    if not callable(fn):
        raise DefinitionError(f"must be callable, got {fn!r}", node=node.name, field="fn")
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise DefinitionError(
            "a generator function cannot be a node: return the value (a list, say) instead",
            node=node.name,
            field="fn",
        )
    binding = Binding(_is_async(fn))
    if node.executor == "process" and binding.is_async:
        raise DefinitionError(
            "executor='process' needs a plain (sync) function", node=node.name, field="executor"
        )
    if node.loop is not None:  # the step takes one argument, the state: the inputs dict
        binding.keywords = tuple(inputs.items())
        return binding
    params = _parameters(fn)
    if params is None:  # no signature to read: pass every input by keyword
        binding.keywords = tuple(inputs.items())
        return binding
    if node.map is not None:
        if not params or params[0].kind not in _POSITIONAL:
            raise DefinitionError(
                "a map function takes the item as its first parameter", node=node.name, field="fn"
            )
        binding.item_param = params[0].name
        params = params[1:]
    _match(binding, node.name, params, dict(inputs))
    return binding


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def _match(
    binding: Binding, name: str, params: list[inspect.Parameter], inputs: dict[str, Value]
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
    binding.positional, binding.keywords, binding.from_input = (
        tuple(positional),
        tuple(keywords),
        tuple(from_input),
    )


def _is_async(fn: Callable[..., Any]) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with an async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)
