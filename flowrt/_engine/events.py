"""Run events: built only when someone listens (a listener, a ``stream`` consumer, structlog
configured by the application or by ``configure_logging``, or stdlib ``logging`` configured by
the application), so an unobserved run pays one attribute check.

Logging goes to structlog when the application configured it; else to the stdlib logger
``flowrt`` when the application configured stdlib logging (a handler on the root logger or on
``flowrt``), as ``event key=value ...`` lines without the empty fields; else nowhere (``flowrt``
carries a ``NullHandler``: a library prints nothing by itself).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

from .._fast import as_error_info
from .._models import Event, RunResult
from .invoke import still_running
from .observe import Observer, Wait

_stdlib_log = logging.getLogger("flowrt")
_QUIET = [logging.NullHandler()]  # flowrt's own handlers while nobody configured logging
_stdlib_log.addHandler(_QUIET[0])
_LEVELS = {"node.retrying": "warning", "run.retrying": "warning"}


class _StdlibLogger:
    """What the emitter logs through when only stdlib logging is configured: ``info`` and
    ``warning`` of an event and its fields, as one ``event key=value ...`` line (the fields are
    also on the record, as ``record.flowrt``)."""

    __slots__ = ()

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if _stdlib_log.isEnabledFor(level):
            text = " ".join(f"{key}={value}" for key, value in fields.items() if key != "traceback")
            if "traceback" in fields:
                text += "\n" + fields["traceback"].rstrip()
            _stdlib_log.log(level, "%s %s", event, text, extra={"flowrt": fields})


_STDLIB = _StdlibLogger()  # it holds nothing: one serves every run


def _stdlib_configured() -> bool:
    """Whether the application configured stdlib logging so that flowrt's warnings show."""
    handlers = _stdlib_log.handlers
    if not logging.root.handlers and (
        handlers == _QUIET or all(isinstance(h, logging.NullHandler) for h in handlers)
    ):
        return False  # nothing configured (checked first, and cheaply: every run asks)
    return _stdlib_log.isEnabledFor(logging.WARNING)


def _structlog_logger() -> Any:
    # An unconfigured structlog prints to stdout: a library must not, so log only once configured.
    structlog = sys.modules.get("structlog")
    if structlog is not None and structlog.is_configured():
        return structlog.get_logger("flowrt")
    return _STDLIB if _stdlib_configured() else None


_ASK = object()  # Emitter(logger=...) not given: find out


class Fields(TypedDict, total=False):
    """An event's fields besides its kind and node (``duration`` is logged, not sent)."""

    attempt: int | None
    status: str | None
    error: dict[str, str] | None
    wait: float | None
    duration: float | None
    result: RunResult | None
    abandoned: list[str] | None
    item: int | None
    signal: str | None
    rate_limit: str | None


def emitter_for(
    workflow: str,
    run_id: str,
    listeners: Sequence[Callable[[Event], None]],
    clock: Callable[[], float],
) -> Emitter | None:
    """The run's emitter, or None when nobody listens (no listener, no logging configured)."""
    logger = _structlog_logger()
    if not listeners and logger is None:
        return None
    return Emitter(workflow, run_id, list(listeners), clock, logger)


class Emitter(Observer):
    """The run's observer that sends its events to its listeners (``add_listener``,
    ``listener=``, ``stream``) and to structlog or stdlib logging."""

    __slots__ = ("clock", "listeners", "logger", "run_id", "start", "started", "workflow")

    def __init__(
        self,
        workflow: str,
        run_id: str,
        listeners: list[Callable[[Event], None]],
        clock: Callable[[], float],
        logger: Any = _ASK,
    ) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.listeners = listeners
        self.logger = _structlog_logger() if logger is _ASK else logger
        self.clock = clock  # the loop's clock (anyio.current_time's, without its lookups)
        self.start = clock()
        self.started = False  # run.started is sent once, whatever the attempts

    def run_started(self, attempt: int) -> None:
        if not self.started:
            self.started = True
            self("run.started")

    def node_started(self, node: str, attempt: int) -> None:
        self("node.started", node, attempt=attempt)

    def node_waiting(self, node: str, state: Any, wait: Wait) -> None:
        if wait.kind == "throttled":  # an attempt waits for its turn under a rate limit
            attempt, limit = state.attempts + 1, wait.rate_limit
            self("node.throttled", node, attempt=attempt, wait=wait.seconds, rate_limit=limit)
            return
        if wait.kind != "retry":  # a wait node (its signal) or a sleep node
            seconds = None if math.isinf(wait.seconds) else wait.seconds
            self("node.waiting", node, attempt=state.attempts, wait=seconds, signal=wait.signal)
            return
        error = None if wait.error is None else dict(wait.error)
        self("node.retrying", node, attempt=state.attempts, error=error, wait=wait.seconds)

    def node_finished(self, node: str, state: Any) -> None:
        self(
            "node.finished",
            node,
            attempt=state.attempts,
            status=state.status,
            error=state.error,
            duration=state.duration,
        )

    def item_failed(self, node: str, item: int, error: Mapping[str, str]) -> None:
        self("node.item_failed", node, status="failure", error=dict(error), item=item)

    async def run_retrying(self, attempt: int, error: Mapping[str, str], wait: float) -> None:
        self("run.retrying", attempt=attempt, error=dict(error), wait=wait)

    async def run_finished(self, result: RunResult) -> None:
        info = result.error
        error = None if info is None else {"type": info.type, "message": info.message}
        abandoned = still_running(result.run_id) or None
        self(
            "run.finished",
            attempt=result.attempts,
            status=result.status,
            error=error,
            result=result,
            abandoned=abandoned,
        )

    async def run_cancelled(self, parked: bool) -> None:
        if not parked:  # a parked run has not finished: it goes on when due
            abandoned = still_running(self.run_id) or None
            self("run.finished", status="cancelled", abandoned=abandoned)

    def __call__(self, kind: str, node: str | None = None, **fields: Unpack[Fields]) -> None:
        """Send event ``kind`` (of ``node``, when it is a node's) with ``fields``."""
        time = self.clock() - self.start
        if self.listeners:
            self._deliver(self._event(kind, node, time, fields))
        if self.logger is not None:
            self._log(kind, node, time, fields)

    def _event(self, kind: str, node: str | None, time: float, fields: Fields) -> Event:
        """The ``Event`` listeners get (every field it does not name is None)."""
        return Event.model_construct(
            kind=kind,
            run_id=self.run_id,
            node=node,
            attempt=fields.get("attempt"),
            status=fields.get("status"),
            error=as_error_info(fields.get("error")),
            wait=fields.get("wait"),
            time=time,
            result=fields.get("result"),
            abandoned=fields.get("abandoned"),
            item=fields.get("item"),
            signal=fields.get("signal"),
            rate_limit=fields.get("rate_limit"),
        )

    def _log(self, kind: str, node: str | None, time: float, fields: Fields) -> None:
        """One log line: the event's fields that are set, its error as ``type: message``."""
        status, error = fields.get("status"), fields.get("error")
        level = "warning" if status == "failure" else _LEVELS.get(kind, "info")
        line = {"run_id": self.run_id, "workflow": self.workflow, "node": node, **fields}
        line["time"] = round(time, 6)
        line.pop("result", None)
        if error:
            line["error"] = f"{error['type']}: {error['message']}"
            line["traceback"] = error.get("traceback")
        getattr(self.logger, level)(kind, **{k: v for k, v in line.items() if v is not None})

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
