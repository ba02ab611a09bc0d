"""A plan's edges: a node's ``depends`` (names, nodes, a Choice's branches) turned into indexed
edges and checked, and the tuples the nodes of a fan-out share."""

from __future__ import annotations

from typing import Any

from .._errors import DefinitionError
from .._nodes import AnyNode, Branch, Choice, Node


def share(shared: dict[tuple[Any, ...], tuple[Any, ...]], value: tuple[Any, ...]) -> Any:
    """``value``, or the equal tuple seen before: the nodes of a fan-out share their tuples."""
    return shared.setdefault(value, value)


def edge(
    ref: Any, name: str, index: dict[str, int], sources: list[AnyNode]
) -> tuple[int, str | None]:
    """Node ``name``'s dependency ``ref`` as (index, Choice option or None).

    Raises:
        DefinitionError: an unknown node, a node of another workflow, or no such option.
    """
    if isinstance(ref, Node):
        ref = (
            ref.name
            if sources[index.get(ref.name, 0)] is ref
            else f"<{ref.name} of another workflow>"
        )
    option = None
    if isinstance(ref, Branch):
        ref, option = ref.choice, ref.option
    elif isinstance(ref, str) and "." in ref:
        ref, option = ref.split(".", 1)
    if not isinstance(ref, str) or ref not in index:
        raise DefinitionError(f"unknown dependency {ref!r}", node=name, field="depends")
    target = sources[index[ref]]
    if option is not None:
        if not isinstance(target, Choice):
            raise DefinitionError(
                f"{ref!r} is not a Choice, so it has no option {option!r}",
                node=name,
                field="depends",
            )
        if option not in target.options:
            raise DefinitionError(
                f"Choice {ref!r} has no option {option!r}", node=name, field="depends"
            )
    return index[ref], option
