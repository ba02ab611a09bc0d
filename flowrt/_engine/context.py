"""``flowrt.current()``: which run, node, attempt and map item the calling code runs for.

It follows Python's context rules: each attempt (and each plain map item) sets a context
variable around its call, so ``current()`` answers in the node's own task and in everything
that inherits its context: tasks and task groups the node starts, ``asyncio.to_thread``,
``anyio.to_thread.run_sync``, a sync node's worker thread (anyio copies the context into it).
A process node's worker process, or an ``Executor``'s remote call, gets the fields with the
call (``call_within``), read when the attempt called out.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .._errors import FlowError

Fields = tuple[str, str, str, int, int | None]  # run_id, workflow, node, attempt, item


@dataclass(frozen=True, slots=True)
class RunContext:
    """What ``flowrt.current()`` returns inside a node.

    Attributes:
        run_id: the run's id (the same across resumes and workers).
        workflow: the workflow's name.
        node: the node's name.
        attempt: the attempt number, from 1 (it goes on counting after a resume).
        item: the map item's index, or None outside a map.
    """

    run_id: str
    workflow: str
    node: str
    attempt: int
    item: int | None = None

    @property
    def idempotency_key(self) -> str:
        """``"<run_id>:<node>"`` (``"<run_id>:<node>[<item>]"`` for a map item): the same
        across attempts, resumes and workers, so a node can make a side effect exactly once
        (an insert keyed by it, an idempotency header)."""
        if self.item is None:
            return f"{self.run_id}:{self.node}"
        return f"{self.run_id}:{self.node}[{self.item}]"


CURRENT: ContextVar[Fields] = ContextVar("flowrt_current")
"""The running attempt's fields: set by ``attempt`` (and a map's plain items) around the call."""


def held() -> Fields | None:
    """The fields of the attempt whose context the caller runs in, or None."""
    return CURRENT.get(None)


def current() -> RunContext:
    """The ``RunContext`` of the node attempt running the calling code: in a node's own task,
    in anything that inherits its context (tasks it starts, ``asyncio.to_thread``,
    ``anyio.to_thread.run_sync``), in its worker thread or its worker process.

    Raises:
        FlowError: called outside a node's function.
    """
    fields = CURRENT.get(None)
    if fields is None:
        raise FlowError("flowrt.current() is only available inside a node's function")
    return RunContext(*fields)


def call_within(held: Fields | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` with ``current()`` answering from ``held`` (in a worker
    process, or wherever an executor runs it)."""
    if held is None:
        return fn(*args, **kwargs)
    token = CURRENT.set(held)
    try:
        return fn(*args, **kwargs)
    finally:
        CURRENT.reset(token)
