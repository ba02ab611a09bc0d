"""``flowrt.current()``: which run, node, attempt and map item the calling code runs for.

The run sets a context variable before each attempt calls the node's function; it reaches
async functions on the loop and sync functions in worker threads (anyio copies the context
into the thread), and is sent along to worker processes (``executor="process"``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ._errors import FlowError


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


# What a run sets per attempt: (run_id, workflow, node, attempt, item), a RunContext's fields.
# A tuple, not the RunContext itself: it is built only when someone asks.
CURRENT: ContextVar[tuple[str, str, str, int, int | None]] = ContextVar("flowrt_current")


def current() -> RunContext:
    """The ``RunContext`` of the node attempt running the calling code.

    Raises:
        FlowError: called outside a node's function.
    """
    try:
        fields = CURRENT.get()
    except LookupError:
        raise FlowError("flowrt.current() is only available inside a node's function") from None
    return RunContext(*fields)


def call_within(
    fields: tuple[str, str, str, int, int | None] | None, fn: Callable[..., Any], /, *args: Any
) -> Any:
    """Call ``fn(*args)`` with ``current()`` set to ``fields`` (in a worker process)."""
    if fields is None:
        return fn(*args)
    token = CURRENT.set(fields)
    try:
        return fn(*args)
    finally:
        CURRENT.reset(token)
