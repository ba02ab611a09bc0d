"""Sub-workflow nodes in workflow files: ``workflow: kyc.yaml`` (a file, relative to the one
that names it), ``workflow: {call: "pkg.mod:kyc"}`` (a workflow object), or the child written
inline; with ``map``, one child per item. ``to_dict`` writes each back as it was given (a
child built in Python is written inline); data loaded without a file finds a child file in
the workflow's ``paths``, else in the current folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ._definition import Definition
from ._errors import DefinitionError
from ._files import ChildCall, NodeFile
from ._nodes import AnyNode

_FILES: ContextVar[tuple[Path, ...]] = ContextVar("flowrt_loading_files", default=())


@contextmanager
def loading(path: str | os.PathLike[str]) -> Iterator[None]:
    """While the block runs, relative child files are found beside ``path``; a file that is
    loading already is a recursion."""
    file = Path(path).resolve()
    stack = _FILES.get()
    if file in stack:
        cycle = " -> ".join(p.name for p in (*stack[stack.index(file) :], file))
        raise DefinitionError(f"sub-workflow recursion: {cycle}", field="workflow")
    token = _FILES.set((*stack, file))
    try:
        yield
    finally:
        _FILES.reset(token)


def add_child(
    wf: Definition,
    spec: NodeFile,
    where: str,
    options: dict[str, Any],
    load: tuple[Callable[[Any, type[Any]], Any], Callable[[str, str], Any], Callable[..., Any]],
) -> None:
    """Add the sub-workflow node ``spec`` (``load``: the loader's ``from_dict``, ``load_call``
    and ``read_yaml``)."""
    from_dict, load_call, read_yaml = load
    given = spec.workflow
    ref: Any
    if isinstance(given, ChildCall):
        child, ref = load_call(given.call, f"{where}.workflow.call"), {"call": given.call}
    elif isinstance(given, str):
        path = _find(given, wf.paths)
        with loading(path):
            child = from_dict(read_yaml(path), type(wf))
        ref = given
    else:
        child, ref = from_dict(given, type(wf)), None
    if not isinstance(child, Definition):
        raise DefinitionError(f"must be a workflow, got {child!r}", field=f"{where}.workflow")
    if spec.map is not None:
        settings = spec.map
        node = wf.map(child, items=settings.items, concurrency=settings.concurrency,
                      tolerated_failures=settings.tolerated_failures, name=spec.name,
                      **options)  # fmt: skip
    else:
        node = wf.subworkflow(child, name=spec.name, input=spec.input, run_id=spec.run_id,
                              detach=spec.detach, trigger=spec.trigger, **options)  # fmt: skip
    node.call = ref


def _find(name: str, paths: Sequence[str]) -> Path:
    """A child file: beside the file being loaded; loaded from data, in the workflow's
    ``paths`` or else the current folder."""
    stack = _FILES.get()
    if stack:
        return stack[-1].parent / name
    for folder in paths:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return Path.cwd() / name


def child_data(node: AnyNode) -> dict[str, Any]:
    """A sub-workflow node's settings, as a file gives them."""
    sub = node.sub
    assert sub is not None
    ref: Any = node.call
    data: dict[str, Any] = {"workflow": ref if ref is not None else sub.workflow.to_dict()}
    if node.map is not None:
        data["map"] = {
            "items": node.map.items,
            "concurrency": node.map.concurrency,
            "tolerated_failures": node.map.tolerated_failures,
        }
        return data
    for key, value in (("input", sub.input), ("run_id", sub.run_id)):
        if value is not None:
            data[key] = value
    if sub.detach:
        data["detach"] = True
    return data


__all__: Sequence[str] = ["add_child", "child_data", "loading"]
