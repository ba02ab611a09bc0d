"""A background run of ``workflow_router`` without a store: its state and its events so far
(``POST /runs``, ``GET /runs/{run_id}`` and its event stream read them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import anyio
from pydantic import BaseModel

from .._errors import RunCancelled
from .._models import ErrorInfo, Event, RunResult


class RunState(BaseModel):
    """A background run: ``status`` is ``running`` until it ends (``success``, ``failure``, or
    ``cancelled`` when the app shut down first); ``result`` is then its RunResult. A run its
    run limit cancelled (``LimitReached``, ``Superseded``) has no result, only ``error``."""

    run_id: str
    status: Literal["running", "success", "failure", "cancelled"]
    result: RunResult | None = None
    error: ErrorInfo | None = None


class Background:
    """A background run's state and its events so far; followers wait on ``changed``."""

    def __init__(self, run_id: str, body: str = "") -> None:
        self.body = body  # the request's, for a repeat with its Idempotency-Key
        self.state = RunState(run_id=run_id, status="running")
        self.events: list[Event] = []
        self.changed = anyio.Event()
        self.scope = anyio.CancelScope()

    def add(self, event: Event) -> None:
        self.events.append(event)
        if event.kind == "run.finished":
            self.state.result = event.result
            self.state.status = "cancelled" if event.status == "cancelled" else event.result.status  # type: ignore[union-attr]
        changed, self.changed = self.changed, anyio.Event()
        changed.set()

    def refused(self, exc: RunCancelled) -> None:
        """Its run limit cancelled it (before it started, or while it ran)."""
        self.state.status = "cancelled"
        self.state.error = ErrorInfo(type=type(exc).__name__, message=str(exc))
        changed, self.changed = self.changed, anyio.Event()
        changed.set()


__all__: Sequence[str] = ["Background", "RunState"]
