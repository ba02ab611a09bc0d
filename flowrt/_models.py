"""Pydantic models users pass in (ErrorHandling, WorkflowRetry) or read back (NodeResult, RunResult,
Event). Inside the hot path flowrt keeps plain dicts and slotted records; these are built at the
boundary without validation (the values are known to be valid: ``_fast.construct``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic_core import ErrorDetails

from ._errors import DefinitionError, WorkflowFailed
from ._report import table

Status = Literal["success", "failure", "skip"]
Behavior = Literal["raise", "return"]
RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


_REASONS = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "literal_error": "must be {expected}",
    "extra_forbidden": "is not a known field",
    "missing": "is required",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "string_pattern_mismatch": "must be a reference 'package.module:name'",
}


def place(loc: tuple[int | str, ...]) -> str:
    """A validation error's location as a path: ``nodes[2].error_handling.backoff_rate``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def reason(error: ErrorDetails) -> str:
    """A short reason for one pydantic error: ``must be >= 1 (got 0.5)``."""
    template = _REASONS.get(error["type"])
    bounds = {k: f"{v:g}" if isinstance(v, float) else v for k, v in error.get("ctx", {}).items()}
    text = template.format(**bounds) if template else str(error["msg"])
    return text if error["type"] == "missing" else f"{text} (got {error.get('input')!r})"


def definition_error(exc: ValidationError, *, node: str | None, prefix: str) -> DefinitionError:
    """Turn pydantic's first validation error into a DefinitionError naming node and field."""
    first = exc.errors()[0]
    return DefinitionError(reason(first), node=node, field=place((prefix, *first["loc"])))


class _Config(BaseModel):
    """User-facing configuration: frozen, no unknown fields, DefinitionError on a bad value."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise definition_error(exc, node=None, prefix=type(self).__name__) from None


class PolicyFields(BaseModel):
    """The plain-data fields of ``ErrorHandling`` (shared with the file format)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    behavior: Behavior = "raise"
    max_retries: int = Field(default=0, ge=0)
    retry_interval_seconds: float = Field(default=1.0, ge=0)
    backoff_rate: float = Field(default=1.0, ge=1)
    timeout_seconds: float | None = Field(default=None, gt=0)
    max_interval_seconds: float | None = Field(default=None, ge=0)
    jitter: float = Field(default=0.0, ge=0, le=1)


class ErrorHandling(_Config, PolicyFields):
    """How a node reacts to failure: retries with backoff, a per-attempt timeout, raise or return.

    A node attempts up to ``max_retries + 1`` times; before retry k (k = 0, 1, ...) it waits
    ``retry_interval_seconds * backoff_rate ** k``, capped by ``max_interval_seconds``; ``jitter``
    randomizes that fraction of each wait. Only exceptions matching ``retry_on`` are retried.

    Raises:
        DefinitionError: a field is out of range (negative retries, backoff_rate < 1, ...).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    retry_on: RetryOn = (Exception,)

    @field_validator("retry_on", mode="before")
    @classmethod
    def _one_class_is_a_tuple(cls, value: Any) -> Any:
        # A lone exception class is callable too: without this it would be taken for a predicate.
        if isinstance(value, type) and issubclass(value, BaseException):
            return (value,)
        if isinstance(value, list):
            return tuple(value)
        return value

    @classmethod
    def fail(cls) -> ErrorHandling:
        """No retries; a failure skips the node's dependents and fails the run."""
        return cls(behavior="raise")

    @classmethod
    def ignore(cls) -> ErrorHandling:
        """No retries; a failure becomes the node's result and the run goes on."""
        return cls(behavior="return")

    @classmethod
    def retry(
        cls, attempts: int = 3, seconds: float = 10, ignore_final_error: bool = False
    ) -> ErrorHandling:
        """Retry up to ``attempts`` times (``attempts + 1`` calls in all), ``seconds`` apart.

        With ``ignore_final_error`` the last failure is returned instead of raised.
        """
        behavior: Behavior = "return" if ignore_final_error else "raise"
        return cls(behavior=behavior, max_retries=attempts, retry_interval_seconds=seconds)

    def retries(self, exc: BaseException) -> bool:
        """Whether ``exc`` is one this policy retries (``retry_on``)."""
        if isinstance(self.retry_on, tuple):
            return isinstance(exc, self.retry_on)
        return bool(self.retry_on(exc))


class RetryFields(BaseModel):
    """The fields of ``WorkflowRetry`` (shared with the file format)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_retries: int = Field(default=0, ge=0)
    delay_seconds: float = Field(default=0.0, ge=0)
    backoff_rate: float = Field(default=1.0, ge=1)


class WorkflowRetry(_Config, RetryFields):
    """Re-run a failed run from its first node, same input, after
    ``delay_seconds * backoff_rate ** k``, up to ``max_retries`` times.

    Raises:
        DefinitionError: a field is out of range.
    """


class ErrorInfo(BaseModel):
    """A failure: the exception's class name and message, and for a node's final failure the
    formatted traceback (its last 20 frames at most; None otherwise)."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    traceback: str | None = None


@dataclass(slots=True)
class AttemptRecord:
    """One attempt of a node: when it started (run clock, seconds), how long, its error, the wait
    that followed it before the next attempt (None for the last), and ``held``: how long the
    next attempt then waited for this attempt's thread to return (a sync node that timed out:
    its thread cannot be killed, and never overlaps its retry). A slotted dataclass (pydantic
    validates and serialises it inside NodeResult): runs make one per attempt."""

    attempt: int
    started: float
    duration: float
    error: ErrorInfo | None = None
    wait: float | None = None
    held: float | None = None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class NodeResult(BaseModel):
    """A node's envelope: ``status``, ``output`` (None unless success), ``error``.

    ``attempts`` counts the attempts made (0 for a skipped node); ``duration`` is the node's wall
    time in seconds; ``reason`` says why a node was skipped; ``trace`` lists each attempt;
    ``child_run_id`` is the run a sub-workflow node started (None for other nodes).
    """

    status: Status
    output: Any = None
    error: ErrorInfo | None = None
    attempts: int = 0
    duration: float = 0.0
    reason: str | None = None
    trace: list[AttemptRecord] = Field(default_factory=list)
    child_run_id: str | None = None

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        # One short line whatever the output (repr, str, debuggers, rich): read the fields for it.
        yield "status", self.status
        if self.error is not None:
            yield "error", self.error.type
        if self.reason is not None:
            yield "reason", _short(self.reason)
        yield "attempts", self.attempts
        yield "duration", round(self.duration, 2)


class RunResult(BaseModel):
    """The outcome of one run. ``result["node"]`` is ``result.nodes["node"]``."""

    workflow: str
    run_id: str
    status: Literal["success", "failure"]
    output: Any = None
    error: ErrorInfo | None = None
    nodes: dict[str, NodeResult] = Field(default_factory=dict)
    attempts: int = 1
    started_at: datetime
    finished_at: datetime
    duration: float
    _cause: BaseException | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        # One short line whatever the run's size: a 10,000-node result's full repr is 2.4 MB.
        yield "run_id", self.run_id
        yield "status", self.status
        yield "nodes", len(self.nodes)
        yield "duration", round(self.duration, 2)

    def __getitem__(self, node: str) -> NodeResult:
        return self.nodes[node]

    def __eq__(self, other: object) -> bool:
        # The fields only: a result read back from JSON or a store equals the original (the
        # exception kept for raise_for_status is not part of the result).
        if not isinstance(other, RunResult):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def table(self) -> str:
        """A readable table: node, status, attempts, duration, error or skip reason."""
        return table(self)

    def raise_for_status(self) -> Self:
        """Return self for a successful run.

        Raises:
            WorkflowFailed: the run failed; its ``__cause__`` is the exception that failed it
                when the run ran in this process (a result read back from a store has none).
        """
        if self.status == "failure":
            raise WorkflowFailed(self.workflow, self.run_id, self.error) from self._cause
        return self


EventKind = Literal[
    "run.started",
    "node.started",
    "node.retrying",
    "node.waiting",
    "node.throttled",
    "node.item_failed",
    "node.finished",
    "run.retrying",
    "run.finished",
]


class Event(BaseModel):
    """Something that happened during a run. ``time`` is seconds since the run started; ``wait``
    is the delay before a retry (node.retrying, run.retrying); ``result`` is the RunResult, on
    run.finished only; ``abandoned`` (run.finished) names the sync nodes whose worker threads
    were still running when the run ended (``node`` or ``node[item]``: a thread cannot be
    killed; it was told to stop through ``anyio.from_thread.check_cancelled()``). A run cancelled
    by its caller ends with run.finished of status ``"cancelled"``. ``node.item_failed`` is a
    map item's failure (its final one, after its retries): ``item`` is its index.
    ``node.waiting`` is a wait node that starts waiting for ``signal`` (or a sleep node,
    without one): ``wait`` is the seconds until it is due (None: no timeout).
    ``node.throttled`` is an attempt (``attempt``) waiting ``wait`` seconds for its turn under
    rate limit ``rate_limit`` before it starts."""

    model_config = ConfigDict(frozen=True)

    kind: EventKind
    run_id: str
    node: str | None = None
    attempt: int | None = None
    status: str | None = None
    error: ErrorInfo | None = None
    wait: float | None = None
    time: float = 0.0
    result: RunResult | None = None
    abandoned: list[str] | None = None
    item: int | None = None
    signal: str | None = None
    rate_limit: str | None = None


class SignalSent(BaseModel):
    """What sending a signal did: its place ``seq`` (from 1) in the run's mailbox, and whether
    it was a repeat of a send with the same key and payload (``duplicate``: nothing new kept)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    signal: str
    seq: int
    duplicate: bool = False
