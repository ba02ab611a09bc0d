"""What a run's nodes share and what each node records: ``RunState`` (one per run: its
observers, clock, ids, parking, rate limiter) and ``NodeState`` (one per node: its envelope,
attempts, duration and trace), filled in by ``attempt`` and the scheduler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import Token
from typing import Any, Protocol

import anyio

from .._models import AttemptRecord, ErrorInfo, Status
from .failures import error_fields, format_traceback
from .observe import Observers, Wait
from .rates import MEMORY, Limiter


class NodeState(dict[str, Any]):
    """A node's state while it runs and after. It is also the node's envelope in the result
    results: as a dict it holds exactly ``status``, ``output`` and ``error`` (what selectors,
    templates and conditions see); the rest lives in slots. ``status`` is None until the node
    finishes; a skipped node has a ``reason`` and the root ``cause`` of its skip."""

    __slots__ = (
        "attempts",
        "cause",
        "duration",
        "exception",
        "first",
        "permit",
        "reason",
        "records",
        "text",
        "token",
    )
    token: Token[Any]  # only while its direct attempt runs (``Direct._first``): else unset

    def __init__(
        self, status: Status | None = None, reason: str | None = None, cause: str | None = None
    ):
        self["status"] = status
        self["output"] = None
        self["error"] = None
        self.attempts = 0
        self.duration = 0.0
        self.reason = reason
        self.cause = cause
        self.records: list[AttemptRecord] | None = None  # made with the first (``record``)
        self.first: float | None = None  # the start of a first attempt whose record is owed
        self.exception: BaseException | None = None  # the final failure's exception
        self.text: str | None = None  # the output as JSON text, when it was encoded
        self.permit = False  # its next attempt has its rate-limit permits (resumed in its turn)

    @property
    def status(self) -> Status | None:
        """``"success"``, ``"failure"``, ``"skip"``, or None while running."""
        return self["status"]  # type: ignore[no-any-return]

    @property
    def output(self) -> Any:
        """The function's result (None unless success)."""
        return self["output"]

    @property
    def error(self) -> dict[str, str] | None:
        """``{type, message}`` of a failure."""
        return self["error"]  # type: ignore[no-any-return]

    @property
    def trace(self) -> list[AttemptRecord]:
        """Each attempt's record. A node whose one attempt succeeded (``Direct._ended`` sets
        ``first``) gets its record when this is first read: it is its node's, with the node's
        duration."""
        records = self.records
        if records is None:
            records = self.records = []
        if self.first is not None:
            records.append(AttemptRecord(1, self.first, self.duration))
            self.first = None
        return records

    @trace.setter
    def trace(self, records: list[AttemptRecord]) -> None:
        self.records, self.first = records, None

    def record(self, attempt: AttemptRecord) -> None:
        """Add an attempt's record (the list is made with the first: a node whose one
        attempt succeeded, the common case, never has one until its trace is read)."""
        if self.records is None:
            self.records = [attempt]
        else:
            self.records.append(attempt)

    @property
    def untraced(self) -> bool:
        """Whether the node's one attempt succeeded and its record is still to be made."""
        return self.first is not None

    def attempted(self, start: float, end: float, output: Any) -> NodeState:
        """Record a successful attempt (``start`` and ``end`` on the run's clock) and finish."""
        self.record(AttemptRecord(self.attempts, start, end - start))
        self["status"] = "success"  # what succeed() does, without a second call per node
        self["output"] = output
        return self

    def attempt_failed(self, start: float, end: float, info: ErrorInfo, wait: float | None) -> None:
        """Record a failed attempt with error ``info``, followed by ``wait`` (None: it was the
        last, and the node fails)."""
        self.record(AttemptRecord(self.attempts, start, end - start, info, wait))
        if wait is None:
            self.failed({"type": info.type, "message": info.message})

    def failed_with(self, exc: BaseException) -> None:
        """The node's final failure was ``exc``: keep it (``RunResult.raise_for_status`` chains
        it) and its formatted traceback (in the envelope's error)."""
        self.exception = exc
        self["error"] = {**self["error"], "traceback": format_traceback(exc)}

    def succeed(self, output: Any) -> NodeState:
        """Finish as a success with ``output``."""
        self["status"] = "success"
        self["output"] = output
        return self

    def fail(self, exc: BaseException) -> NodeState:
        """Finish as a failure with ``exc``'s type and message."""
        return self.failed(error_fields(exc))

    def failed(self, error: dict[str, str]) -> NodeState:
        """Finish as a failure with ``error`` (``{type, message}``)."""
        self["status"] = "failure"
        self["output"] = None
        self["error"] = error
        return self


class RunState:
    """What every node of one run shares: its observers (an empty tuple when nothing
    watches), the random source for jitter, the loop's clock, a yield to the loop
    (``checkpoint``), the run's id and workflow name (for ``flowrt.current()``), the failures
    seen so far (``failure_info``), and its parking: ``park_after`` (seconds of a wait from
    which a worker's run is set aside; None: it never is), the scope that stops the run, and
    whether it is parking. The running scheduler is ``scheduler``."""

    __slots__ = (
        "checkpoint",
        "clock",
        "errors",
        "limiter",
        "observers",
        "origin",
        "park_after",
        "parking",
        "rng",
        "run_id",
        "scheduler",
        "scope",
        "workflow",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        checkpoint: Callable[[], Awaitable[None]],
        *,
        observers: Observers = (),
        rng: Any,
        run_id: str = "",
        workflow: str = "",
    ) -> None:
        self.observers = observers
        self.rng = rng
        self.clock = clock
        self.checkpoint = checkpoint
        self.run_id = run_id
        self.workflow = workflow
        self.errors: dict[tuple[str, str], ErrorInfo] = {}  # failures seen, shared alike
        self.origin = clock()  # the run's start on its clock: traces count from it
        self.park_after: float | None = None
        self.scope: anyio.CancelScope | None = None
        self.parking = False
        self.scheduler: Parking | None = None
        self.limiter: Limiter = MEMORY  # where rate-limit permits come from (a store's)


class Parking(Protocol):
    """The scheduler, as a node's retry wait tells it (``_engine.scheduler``): it tells the
    run's observers, and parks the run when every running node waits long."""

    def waiting(self, node: str, state: NodeState, wait: Wait) -> None:
        """Node ``node`` waits ``wait.seconds`` before its next attempt."""

    def woke(self, wait: Wait) -> None:
        """A wait that ``waiting`` announced is over."""

    def node_waits(self, node: str, wait: Wait) -> None:
        """Node ``node`` (a wait or sleep node, running) waits: ``waiting`` with its state."""

    @property
    def results(self) -> dict[str, Any]:
        """The run's results so far (what a rate limit's key reads)."""
