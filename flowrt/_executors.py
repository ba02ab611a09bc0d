"""Executors by name, for definitions kept as data (YAML, JSON, a stored run): ``"thread"``,
``"process"``, ``"ray"``, or ``{"ray": {options}}`` for ``flowrt.ray.RayExecutor(**options)``;
and back: an executor object that has ``to_data()`` is written as what it returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from ._errors import DefinitionError

ExecutorName = Literal["thread", "process"]


@runtime_checkable
class Executor(Protocol):
    """Where a sync node's function runs, besides ``"thread"`` and ``"process"``: any object
    with ``async def call(self, fn, /, *args, **kwargs)`` returning ``fn(*args, **kwargs)``.
    When the call is cancelled (a timeout, a run deadline, the caller) it must stop the remote
    work, wait until it has stopped, then re-raise the cancellation: an attempt never overlaps
    its retry. ``flowrt.ray.RayExecutor`` is one."""

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` and return its result (or raise its exception)."""


ExecutorSpec = ExecutorName | Executor

NAMES = ("thread", "process", "ray")
DataForm = str | dict[str, dict[str, Any]]


def named(data: DataForm | None, where: str) -> ExecutorSpec | None:
    """The executor ``data`` names (None: the workflow's).

    Raises:
        DefinitionError: an unknown name, or options for an executor that takes none, or
            ``ray`` without the ``flowrt[ray]`` extra.
    """
    if data is None:
        return None
    name, options = (data, {}) if isinstance(data, str) else _one(data, where)
    if name in ("thread", "process"):
        if options:
            raise DefinitionError(f"{name!r} takes no options", field=where)
        return name  # type: ignore[return-value]
    if name != "ray":
        raise DefinitionError(f"must be one of {list(NAMES)}, got {name!r}", field=where)
    try:
        # optional: Ray comes with flowrt[ray]; imported only for a definition that names it
        from .ray import RayExecutor
    except ImportError as exc:
        raise DefinitionError(
            f"executor 'ray' needs Ray: pip install 'flowrt[ray]' ({exc})", field=where
        ) from None
    return RayExecutor(**options)


def _one(data: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    if len(data) != 1:
        raise DefinitionError(
            f"an executor with options is one name and its options, got {data!r}", field=where
        )
    ((name, options),) = data.items()
    if not isinstance(options, dict):
        raise DefinitionError(f"the options of {name!r} must be a mapping", field=where)
    return str(name), options


def as_data(executor: ExecutorSpec | None, node: str | None) -> DataForm | None:
    """``executor`` as data (None: not set).

    Raises:
        DefinitionError: an executor object without ``to_data()``.
    """
    if executor is None or isinstance(executor, str):
        return executor
    to_data = getattr(executor, "to_data", None)
    if isinstance(executor, Executor) and callable(to_data):
        data: DataForm = to_data()
        return data
    raise DefinitionError(
        f"the executor {executor!r} has no data form (to_data())", node=node, field="executor"
    )
