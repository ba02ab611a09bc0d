"""What a store keeps, as data: a run's row (``RunRow``), a node's record (``NodeRow``) and the
JSON text a node record travels as (``node_text``). Pure: no I/O.

A node record is a JSON array ``[name, status, output, error, attempts, duration, reason,
trace, due]``: ``output`` and ``trace`` are JSON values (``trace`` a list of attempts, or for
one clean attempt the number of seconds into the run it started), ``duration`` is in seconds to the
microsecond, ``due`` (a wall-clock time, ``time.time()``) is set only on a ``waiting`` record,
the node's retry wait, and may be left out. Stores receive records as text, already encoded.
JSON is strict: NaN and Infinity are refused (SQLite's and PostgreSQL's JSON functions reject
them), so an output that holds one fails its node with ``OutputError``.
"""

from __future__ import annotations

import json
import json.encoder
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any, Literal

from .._fast import error_of
from .._models import AttemptRecord

RunStatus = Literal[
    "queued", "running", "waiting", "retrying", "success", "failure", "cancelled", "interrupted"
]
NodeStatus = Literal["success", "failure", "skip", "waiting"]


@dataclass(slots=True)
class NodeRow:
    """One node as ``load_run`` returns it (``output`` and ``trace`` as JSON text); ``due``
    is the wall-clock time a ``waiting`` node's next attempt is due."""

    run_id: str
    name: str
    status: NodeStatus
    output: str | None
    error: dict[str, str] | None
    attempts: int
    duration: float
    reason: str | None
    trace: str
    due: float | None = None

    @property
    def next_attempt(self) -> int | None:
        """A ``waiting`` node's next attempt number (it continues there when due), else None."""
        return self.attempts + 1 if self.status == "waiting" else None


@dataclass(frozen=True, slots=True)
class RunKey:
    """A run's key under one of its workflow's run limits: ``key`` (the workflow, the
    limit's selector and the value it took, ``sync:$.input.customer=42``), how many runs may
    hold it at once, and what an extra run does (``queue``, ``cancel_newest``,
    ``cancel_in_progress``)."""

    key: str
    max_runs: int
    strategy: str


@dataclass(slots=True)
class RunRow:
    """One stored run. ``input`` is JSON text; ``definition`` the workflow as data (JSON), when
    it has a data form; ``retry_due`` the wall-clock time (``time.time()``) a pending retry is
    due (a workflow-level retry, or a parked node wait); ``owner`` the process executing it,
    whose ``lease_until`` (wall clock) says until when it is presumed alive; ``claim`` counts
    the times the run was claimed (each write is checked against it); ``cancel`` is a pending
    request to cancel it (``{"reason", "by"}``) that its owner has not acted on yet;
    ``stalled`` counts the claims since a node of it last finished (poison runs);
    ``timeout`` is the run's deadline in seconds, which every execution of it applies from its
    start; ``source`` says where the workflow's code lives (``"/abs/app.py:wf"``,
    ``"pkg.mod:wf"``, or a module, ``"pkg.mod"``, that defines it); a child run (of a
    sub-workflow node) names its ``parent_run_id`` and ``parent_node`` (``node[i]`` for a map
    item); ``limits`` are its run limits' keys (kept in a table of their own: given when the
    run is inserted, not loaded with it)."""

    run_id: str
    workflow: str
    input: str
    status: RunStatus
    started_at: str
    definition: str | None = None
    attempts: int = 1
    error: dict[str, str] | None = None
    output: str | None = None
    finished_at: str | None = None
    retry_due: float | None = None
    owner: str | None = None
    lease_until: float | None = None
    claim: int = 0
    cancel: dict[str, str] | None = None
    stalled: int = 0
    timeout: float | None = None
    source: str | None = None
    nodes: list[NodeRow] = field(default_factory=list)
    parent_run_id: str | None = None
    parent_node: str | None = None
    limits: tuple[RunKey, ...] = ()


def deadline_error(workflow: str, timeout: float) -> dict[str, str]:
    """The error of a run that ran out of time (what its row stores)."""
    return {
        "type": "TimeoutError",
        "message": f"workflow {workflow!r} timed out after {timeout:g}s",
    }


def ran_out_of_time(run: RunRow) -> bool:
    """Whether stored run ``run`` failed on its stored deadline: its error is the one
    ``deadline_error`` builds for it (a node's own timeout is another error)."""
    error, timeout = run.error, run.timeout
    if error is None or timeout is None:
        return False
    built = deadline_error(run.workflow, timeout)
    return (error.get("type"), error.get("message")) == (built["type"], built["message"])


def _raise_unencodable(value: object) -> None:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
# json's C encoder, built once (json.dumps builds one per call); None without the C accelerator.
_encode = _c_make_encoder and _c_make_encoder(
    None, _raise_unencodable, encode_basestring_ascii, None, ": ", ", ", False, False, False
)


def to_json(value: Any) -> str:
    """``json.dumps(value, allow_nan=False)``, faster.

    Raises:
        TypeError: a value JSON cannot hold (an object, bytes...).
        ValueError: NaN or Infinity, or a circular value.
        RecursionError: a value nested too deep.
    """
    kind = type(value)  # exact types: bool, an int subclass, goes through the encoder
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if _encode is None:  # pragma: no cover
        return json.dumps(value, allow_nan=False)
    return "".join(_encode(value, 0))


def unencodable(exc: BaseException) -> str:
    """Why ``to_json`` refused a value, in words (a RecursionError says nothing useful)."""
    if isinstance(exc, RecursionError):
        return "it is nested too deep"
    if isinstance(exc, ValueError) and "Out of range float" in str(exc):
        return "it holds NaN or Infinity, which strict JSON cannot hold"
    return str(exc)


def node_text(
    name: str,
    status: str,
    output: str | None,
    error: dict[str, str] | None,
    attempts: int,
    duration: float,
    reason: str | None,
    trace: str,
    due: float | None = None,
) -> str:
    """A node as the JSON text stores receive (see the module docstring); ``output`` and
    ``trace`` are JSON text already (no second encoding), ``name`` a node name (letters,
    digits, ``_``, ``-``: no escaping), ``duration`` to the microsecond (a float's shortest
    repr costs twice as much)."""
    error_text = "null" if error is None else to_json(error)
    reason_text = "null" if reason is None else encode_basestring_ascii(reason)
    tail = "" if due is None else f", {due:.6f}"
    return (
        f'["{name}", "{status}", {output or "null"}, {error_text}, {attempts}, {duration:.6f}, '
        f"{reason_text}, {trace}{tail}]"
    )


def trace_json(trace: list[AttemptRecord]) -> str:
    """A node's attempts as JSON text; for one clean attempt only its start, a number (the
    node's own figures say the rest)."""
    if len(trace) == 1 and trace[0].error is None:
        return f"{trace[0].started:.6f}"
    return to_json(
        [
            [a.attempt, a.started, a.duration, a.error and [a.error.type, a.error.message], a.wait]
            + ([] if a.held is None else [a.held])
            for a in trace
        ]
    )


def trace_of(text: str, duration: float) -> list[AttemptRecord]:
    """The attempts ``trace_json`` wrote (a number: one clean attempt of ``duration`` that
    started then; ``null``, as earlier versions wrote it: at an unknown time, taken as 0)."""
    stored = json.loads(text)
    if not isinstance(stored, list):
        return [AttemptRecord(1, float(stored or 0.0), duration)]
    return [
        AttemptRecord(
            n,
            s,
            d,
            error_of(e[0], e[1]) if e else None,
            w,
            *held,
        )
        for n, s, d, e, w, *held in stored
    ]


def node_rows(run_id: str, batches: list[str]) -> list[NodeRow]:
    """The nodes of a run from its record batches (JSON arrays of records), oldest batch
    first: a node recorded again (a retry wait, then its end; or a resume) keeps its last
    record, in the order of those last records."""
    latest: dict[str, NodeRow] = {}
    for batch in batches:
        for name, status, output, error, attempts, duration, reason, trace, *due in json.loads(
            batch
        ):
            latest.pop(name, None)
            latest[name] = NodeRow(
                run_id,
                name,
                status,
                None if output is None else to_json(output),
                error,
                attempts,
                duration,
                reason,
                to_json(trace),
                due[0] if due else None,
            )
    return list(latest.values())


def run_row(row: tuple[Any, ...]) -> RunRow:
    """A run from a store's row of its columns (``run_id, workflow, input, definition, status,
    attempts, error, output, started_at, finished_at, retry_due, owner, lease_until, claim,
    cancel, stalled, timeout, source, parent_run_id, parent_node``)."""
    run_id, workflow, input, definition, status, attempts, error, output, *rest = row
    started, finished, due, owner, lease, claim, cancel, stalled, timeout, source, *parent = rest
    return RunRow(
        run_id,
        workflow,
        input,
        status,
        started,
        definition,
        attempts,
        json.loads(error) if error else None,
        output,
        finished,
        due,
        owner,
        lease,
        claim,
        json.loads(cancel) if cancel else None,
        stalled,
        timeout,
        source,
        parent_run_id=parent[0],
        parent_node=parent[1],
    )


def new_values(run: RunRow) -> tuple[Any, ...]:
    """The parameters of a new run's insert, in the order of both stores' ``NEW`` columns
    (its status is the statement's)."""
    return (
        run.run_id,
        run.workflow,
        run.input,
        run.definition,
        run.attempts,
        run.started_at,
        run.timeout,
        run.source,
        run.parent_run_id,
        run.parent_node,
    )


def update_values(
    run: RunRow, lease: float, release: bool, token: int, progress: bool
) -> tuple[Any, ...]:
    """The parameters of a store's run update, in the order both stores' statements take
    them: status, attempts, error, output, finished_at, retry_due, lease, release (twice:
    the owner and a pending cancel request go), progress (a node finished: ``stalled`` is
    reset), run_id, claim."""
    error = None if run.error is None else json.dumps(run.error)
    return (
        run.status,
        run.attempts,
        error,
        run.output,
        run.finished_at,
        run.retry_due,
        lease,
        release,
        release,
        progress,
        run.run_id,
        token,
    )
