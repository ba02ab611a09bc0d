"""One interface for whatever watches a run: the event emitter (listeners, ``wf.stream``,
logging), the durable writer, OpenTelemetry. The engine holds one tuple of observers and calls
each hook on every one of them in order; it never knows which exist, and with none a hook costs
one truth test. Modelled on trio's instruments (``trio/_core/_instrumentation.py``).

Node hooks are plain calls, made in the node's own task (so an observer can set context for the
node's code, as OpenTelemetry does); run hooks are awaited once per run, so that a durable
writer can write the run's end before the run returns. An observer only records: deciding what
the run does (parking it, stopping it) is the scheduler's and the run's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .._models import RunResult


@dataclass(frozen=True, slots=True)
class Wait:
    """What a waiting node waits for, and until when: ``seconds`` from now (on the loop's
    clock; ``math.inf``: no limit), ``due`` the same moment on the wall clock. A retry wait
    names the failure it follows (``error``, ``{type, message}``); a wait node, its
    ``signal``; a sleep node waits for time alone; an attempt waiting for its turn under a
    rate limit (``throttled``) names the limit (``rate_limit``)."""

    kind: Literal["retry", "signal", "sleep", "child", "throttled"]
    seconds: float
    due: float
    error: Mapping[str, str] | None = None
    signal: str | None = None
    rate_limit: str | None = None


class Observer:
    """A run's observer: every hook does nothing unless overridden. ``state`` is the node's
    state (``_engine.attempt.NodeState``): its envelope (``status``, ``output``, ``error``)
    and its ``attempts``, ``duration``, ``trace``."""

    __slots__ = ()

    def run_started(self, attempt: int) -> None:
        """Workflow-level attempt ``attempt`` (1, then 2... after a workflow retry) starts."""

    def node_started(self, node: str, attempt: int) -> None:
        """Attempt ``attempt`` of ``node`` starts (in the node's task, before its code)."""

    def node_waiting(self, node: str, state: Any, wait: Wait) -> None:
        """``node`` waits (a retry's backoff: its failed attempt is on ``state.trace``)."""

    def node_finished(self, node: str, state: Any) -> None:
        """``node`` ended: success, failure or skip (``record``)."""

    def item_failed(self, node: str, item: int, error: Mapping[str, str]) -> None:
        """Item ``item`` of map node ``node`` failed with ``error``."""

    async def run_retrying(self, attempt: int, error: Mapping[str, str], wait: float) -> None:
        """Workflow-level attempt ``attempt`` failed with ``error``; the next starts after
        ``wait`` seconds."""

    async def run_finished(self, result: RunResult) -> None:
        """The run ended with ``result`` (success or failure)."""

    async def run_cancelled(self, parked: bool) -> None:
        """The run stopped before its end: cancelled, its lease lost, or (``parked``) set
        aside by a worker until a wait is due."""


Observers = tuple[Observer, ...]


class Instrument:
    """What watches every run of a workflow (``Workflow.add_listener`` takes one): it makes
    each run's observer (None: it does not watch that run). OpenTelemetry's tracer is one."""

    __slots__ = ()

    def observe(self, run_id: str, workflow: str) -> Observer | None:
        """The observer of run ``run_id`` of ``workflow``."""
        return None
