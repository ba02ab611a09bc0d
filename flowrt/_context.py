"""``flowrt.current()``: which run, node, attempt and map item the calling code runs for.

Nothing is set per attempt on the loop (a context variable set per node task cost 4-5% of a
no-op node): ``current()`` finds the frame of the attempt (or map item) that is running the
calling code by walking up the caller's frames, and reads it. The modules owning those frames
register a reader for them (``register``). A sync node's worker thread and a process node's
worker process get the answer through a context variable, set where the call leaves the loop.
A task that a node spawns itself has its own stack: call ``current()`` in the node's own task.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from ._errors import FlowError

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


READERS: dict[CodeType, Callable[[Mapping[str, Any]], Fields]] = {}
"""The frames that run node code, by code object: each reads a RunContext's fields from the
frame's locals."""
# In a worker thread or process: the fields, or the frame of the attempt that called out.
CURRENT: ContextVar[Fields | FrameType] = ContextVar("flowrt_current")


def register(code: CodeType, reader: Callable[[Mapping[str, Any]], Fields]) -> None:
    """Let ``current()`` recognise frames of ``code`` and read them with ``reader``."""
    READERS[code] = reader


def fields_from(frame: FrameType | None) -> Fields | None:
    """The fields of the first registered frame at or above ``frame``."""
    while frame is not None:
        reader = READERS.get(frame.f_code)
        if reader is not None:
            return reader(frame.f_locals)
        frame = frame.f_back
    return None


def current() -> RunContext:
    """The ``RunContext`` of the node attempt running the calling code (in a node's own task,
    its worker thread or its worker process).

    Raises:
        FlowError: called outside a node's function.
    """
    held = CURRENT.get(None)
    if isinstance(held, tuple):
        return RunContext(*held)
    fields = fields_from(held if held is not None else sys._getframe(1))
    if fields is None:
        raise FlowError("flowrt.current() is only available inside a node's function")
    return RunContext(*fields)


def call_within(
    held: Fields | FrameType | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Any:
    """Call ``fn(*args, **kwargs)`` with ``current()`` answering from ``held`` (in a worker
    thread or process)."""
    if held is None:
        return fn(*args, **kwargs)
    token = CURRENT.set(held)
    try:
        return fn(*args, **kwargs)
    finally:
        CURRENT.reset(token)
