"""Pure checks of a workflow's graph: node names, and that dependencies form no cycle."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ._errors import DefinitionError
from ._resolve import NAME

_NAME = re.compile(NAME)


def check_names(names: Sequence[Any]) -> dict[str, int]:
    """Each node name's index.

    Raises:
        DefinitionError: a name that is not one (letters, digits, ``_``, ``-``), ``input``, or
            a duplicate.
    """
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise DefinitionError(
                f"invalid name {name!r}: use letters, digits, '_' and '-', not starting with "
                "a digit (pass name=... for lambdas and partials)",
                field="name",
            )
        if name == "input":
            raise DefinitionError(
                "'input' is reserved for the run input", node="input", field="name"
            )
        if name in index:
            raise DefinitionError("duplicate node name", node=name, field="name")
        index[name] = i
    return index


def check_acyclic(
    names: Sequence[str], deps: Sequence[Sequence[int]], dependents: Sequence[Sequence[int]]
) -> None:
    """Kahn's algorithm over node indexes.

    Raises:
        DefinitionError: a cycle, with its path (``a -> b -> a``).
    """
    remaining = [len(d) for d in deps]
    ready = [i for i, d in enumerate(deps) if not d]
    while ready:
        for dependent in dependents[ready.pop()]:
            remaining[dependent] -= 1
            if not remaining[dependent]:
                ready.append(dependent)
    stuck = {i for i, count in enumerate(remaining) if count}
    if not stuck:
        return
    path, current = [], min(stuck)
    while current not in path:
        path.append(current)
        current = next(dep for dep in deps[current] if dep in stuck)
    cycle = [names[i] for i in path[path.index(current) :]][::-1]
    cycle.append(cycle[0])
    raise DefinitionError(f"cycle: {' -> '.join(cycle)}", node=cycle[0], field="depends")
