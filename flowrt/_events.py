"""Run events: built only when someone listens (a ``stream`` consumer, or structlog configured by
the application or by ``configure_logging``), so an unobserved run pays one attribute check."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from ._models import Event, RunResult, as_error_info

_stdlib_log = logging.getLogger("flowrt")
_LEVELS = {"node.retrying": "warning", "run.retrying": "warning"}


def _structlog_logger() -> Any:
    # An unconfigured structlog prints to stdout: a library must not, so log only once configured.
    structlog = sys.modules.get("structlog")
    if structlog is None or not structlog.is_configured():
        return None
    return structlog.get_logger("flowrt")


class Emitter:
    """Sends a run's events to its listeners (``add_listener``, ``stream``) and to structlog."""

    __slots__ = ("clock", "listeners", "logger", "run_id", "start", "workflow")

    def __init__(
        self,
        workflow: str,
        run_id: str,
        listeners: list[Callable[[Event], None]],
        clock: Callable[[], float],
    ) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.listeners = listeners
        self.logger = _structlog_logger()
        self.clock = clock  # the loop's clock (anyio.current_time's, without its lookups)
        self.start = clock()

    @property
    def active(self) -> bool:
        """Whether anyone listens."""
        return bool(self.listeners) or self.logger is not None

    def __call__(
        self,
        kind: Any,
        node: str | None = None,
        *,
        attempt: int | None = None,
        status: str | None = None,
        error: dict[str, str] | None = None,
        wait: float | None = None,
        duration: float | None = None,
        result: RunResult | None = None,
        abandoned: list[str] | None = None,
    ) -> None:
        time = self.clock() - self.start
        if self.listeners:
            self._deliver(
                Event.model_construct(
                    kind=kind, run_id=self.run_id, node=node, attempt=attempt, status=status,
                    error=as_error_info(error), wait=wait, time=time, result=result,
                    abandoned=abandoned,
                )
            )  # fmt: skip
        if self.logger is not None:
            level = "warning" if status == "failure" else _LEVELS.get(kind, "info")
            getattr(self.logger, level)(
                kind, run_id=self.run_id, workflow=self.workflow, node=node, attempt=attempt,
                status=status, wait=wait, duration=duration, time=round(time, 6),
                error=f"{error['type']}: {error['message']}" if error else None,
                **({"abandoned": abandoned} if abandoned else {}),
                **({"traceback": error["traceback"]} if error and error.get("traceback") else {}),
            )  # fmt: skip

    def _deliver(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # an observer's bug must not break the run it observes
                _stdlib_log.exception("flowrt event listener %r failed on %s", listener, event.kind)


def configure_logging(json: bool = False) -> None:
    """Set up structlog to print flowrt's events (and the application's) to stderr: readable
    key-value lines, or one JSON object per line with ``json=True``. flowrt never calls this by
    itself; the CLI does."""
    # optional: structlog is only imported once the application asks for logging
    import structlog

    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
