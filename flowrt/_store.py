"""Durable run storage: the ``RunStore`` interface and its embedded default, ``SQLiteStore``.

A store keeps each run's input, each node's envelope and attempt trace as it finishes, the run's
status, and pending workflow-level retries with their due time (wall clock, so they survive a
restart). Every method is async; SQLite work happens in a worker thread, one call at a time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.to_thread

T = TypeVar("T")

RunStatus = str  # "running" | "success" | "failure" | "cancelled"


@dataclass(slots=True)
class NodeRow:
    """One node as ``load_run`` returns it (``output`` and ``trace`` as JSON text)."""

    run_id: str
    name: str
    status: str
    output: str | None
    error: dict[str, str] | None
    attempts: int
    duration: float
    reason: str | None
    trace: str


def record(
    name: str,
    status: str,
    output: str | None,
    error: dict[str, str] | None,
    attempts: int,
    duration: float,
    reason: str | None,
    trace: str,
) -> str:
    """A finished node as the JSON text stores receive: ``[name, status, output, error,
    attempts, duration, reason, trace]``; ``output`` and ``trace`` are JSON text already (no
    second encoding), ``name`` a node name (letters, digits, ``_``, ``-``: no escaping),
    ``duration`` in seconds to the microsecond (a float's shortest repr costs twice as much)."""
    error_text = "null" if error is None else (
        f'{{"type": {encode_basestring_ascii(error["type"])}, '
        f'"message": {encode_basestring_ascii(error["message"])}}}'
    )  # fmt: skip
    reason_text = "null" if reason is None else encode_basestring_ascii(reason)
    return (
        f'["{name}", "{status}", {output or "null"}, {error_text}, {attempts}, {duration:.6f}, '
        f"{reason_text}, {trace}]"
    )


@dataclass(slots=True)
class RunRow:
    """One stored run. ``input`` is JSON text; ``definition`` the workflow as data (JSON), when
    it has a data form; ``retry_due`` a wall-clock time (``time.time()``) for a pending retry."""

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
    nodes: list[NodeRow] = field(default_factory=list)


@runtime_checkable
class RunStore(Protocol):
    """Where durable runs live. Implement it to keep runs elsewhere than SQLite."""

    async def write(self, run_id: str, records: Sequence[str], run: RunRow | None = None) -> None:
        """In one transaction: record ``run`` (insert, or update its status, attempts, error,
        output, finished_at and retry_due) when given, and these finished nodes of run
        ``run_id``, each a JSON record (see ``record``); a later record of a node replaces
        the earlier one."""

    async def load_run(self, run_id: str) -> RunRow | None:
        """The stored run with its nodes, or None."""

    async def list_runs(self, limit: int = 50) -> list[RunRow]:
        """The most recent runs, newest first (without their nodes)."""

    async def due_runs(self, now: float) -> list[RunRow]:
        """Runs whose workflow-level retry is due at ``now`` (wall clock)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    input TEXT NOT NULL,
    definition TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    output TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    retry_due REAL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE INDEX IF NOT EXISTS runs_due ON runs (retry_due) WHERE retry_due IS NOT NULL;
CREATE TABLE IF NOT EXISTS node_batches (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    records TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS node_batches_run ON node_batches (run_id);
CREATE VIEW IF NOT EXISTS nodes AS
    SELECT b.run_id AS run_id, b.id AS batch,
           json_extract(j.value, '$[0]') AS name, json_extract(j.value, '$[1]') AS status,
           json_extract(j.value, '$[2]') AS output, json_extract(j.value, '$[3]') AS error,
           json_extract(j.value, '$[4]') AS attempts, json_extract(j.value, '$[5]') AS duration,
           json_extract(j.value, '$[6]') AS reason
    FROM node_batches AS b, json_each(b.records) AS j;
"""
_setup_lock = threading.Lock()
_RUN_COLUMNS = (
    "run_id, workflow, input, definition, status, attempts, error, output, started_at, "
    "finished_at, retry_due"
)


_UPSERT_RUN = (
    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts, "
    "error = excluded.error, output = excluded.output, finished_at = excluded.finished_at, "
    "retry_due = excluded.retry_due"
)


def _run_values(run: RunRow) -> tuple[Any, ...]:
    return (
        run.run_id, run.workflow, run.input, run.definition, run.status, run.attempts,
        _json(run.error), run.output, run.started_at, run.finished_at, run.retry_due,
    )  # fmt: skip


def _json(value: dict[str, str] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _run_row(row: tuple[Any, ...]) -> RunRow:
    run_id, workflow, input, definition, status, attempts, error, output, started, finished, due = (
        row
    )
    return RunRow(
        run_id, workflow, input, status, started, definition, attempts,
        json.loads(error) if error else None, output, finished, due,
    )  # fmt: skip


class SQLiteStore:
    """A ``RunStore`` in one SQLite file (WAL mode; safe for many runs and several processes).
    Close it when done (``close()``, or use it as a context manager): its connection stays open
    between calls.

    Args:
        path: the database file (created if missing).
        busy_timeout: seconds to wait for another process's write lock before failing.
    """

    def __init__(self, path: str | Path = "flowrt.db", *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, used by one worker thread at a time
        self._limiter: anyio.CapacityLimiter | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                self.path, timeout=self._busy_timeout, check_same_thread=False, isolation_level=None
            )
            # Switching a new file to WAL needs it to itself: set up one connection at a time.
            with _setup_lock:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.executescript(_SCHEMA)
            self._connection = connection
        return self._connection

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)

        def locked() -> T:
            with self._lock:
                return fn(self._connect())

        return await anyio.to_thread.run_sync(locked, limiter=self._limiter)

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the next call reopens it). ``with SQLiteStore(path) as store:``
        closes it at the end of the block."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    async def write(self, run_id: str, records: Sequence[str], run: RunRow | None = None) -> None:
        """Record ``run`` (when given) and finished nodes, in one transaction: the nodes go in
        as one row, a JSON array of their records (the ``nodes`` view shows one row per node)."""

        def write(db: sqlite3.Connection) -> None:
            with db:  # one transaction: commit on success, roll back on error
                db.execute("BEGIN IMMEDIATE")  # the write lock now (waits busy_timeout)
                if run is not None:
                    db.execute(_UPSERT_RUN, _run_values(run))
                if records:
                    query = "INSERT INTO node_batches (run_id, records) VALUES (?, ?)"
                    db.execute(query, (run_id, "[" + ", ".join(records) + "]"))

        await self._call(write)

    async def load_run(self, run_id: str) -> RunRow | None:
        """The stored run with its nodes, or None."""

        def read(db: sqlite3.Connection) -> RunRow | None:
            found = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if found is None:
                return None
            run = _run_row(found)
            latest: dict[str, NodeRow] = {}  # a node written again (resumed) keeps its last record
            query = "SELECT records FROM node_batches WHERE run_id = ? ORDER BY id"
            for (records,) in db.execute(query, (run_id,)):
                for name, status, output, error, attempts, duration, reason, trace in json.loads(
                    records
                ):
                    latest.pop(name, None)
                    latest[name] = NodeRow(
                        run_id, name, status, None if output is None else json.dumps(output),
                        error, attempts, duration, reason, json.dumps(trace),
                    )  # fmt: skip
            run.nodes = list(latest.values())
            return run

        return await self._call(read)

    async def list_runs(self, limit: int = 50) -> list[RunRow]:
        """The most recent runs, newest first."""

        def read(db: sqlite3.Connection) -> list[RunRow]:
            query = f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY started_at DESC LIMIT ?"
            return [_run_row(row) for row in db.execute(query, (limit,))]

        return await self._call(read)

    async def due_runs(self, now: float) -> list[RunRow]:
        """Runs whose workflow-level retry is due."""

        def read(db: sqlite3.Connection) -> list[RunRow]:
            query = f"SELECT {_RUN_COLUMNS} FROM runs WHERE retry_due <= ? ORDER BY retry_due"
            return [_run_row(row) for row in db.execute(query, (now,))]

        return await self._call(read)
