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
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.to_thread

T = TypeVar("T")

RunStatus = str  # "running" | "success" | "failure" | "cancelled"


@dataclass(slots=True)
class NodeRow:
    """One node's stored envelope and trace (``output`` and ``trace`` as JSON text)."""

    run_id: str
    name: str
    status: str
    output: str | None
    error: dict[str, str] | None
    attempts: int
    duration: float
    reason: str | None
    trace: str


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

    async def write(self, nodes: Sequence[NodeRow], run: RunRow | None = None) -> None:
        """In one transaction: record ``run`` (insert, or update its status, attempts, error,
        output, finished_at and retry_due) when given, and these finished nodes of run
        ``run_id`` (replacing earlier rows of the same names)."""

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
CREATE TABLE IF NOT EXISTS nodes (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT,
    error TEXT,
    attempts INTEGER NOT NULL,
    duration REAL NOT NULL,
    reason TEXT,
    trace TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
"""
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

    def close(self) -> None:
        """Close the connection (the next call reopens it)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    async def write(self, nodes: Sequence[NodeRow], run: RunRow | None = None) -> None:
        """Record ``run`` (when given) and finished nodes, in one transaction."""
        rows = [
            (n.run_id, n.name, n.status, n.output, _json(n.error), n.attempts, n.duration,
             n.reason, n.trace)
            for n in nodes
        ]  # fmt: skip

        def write(db: sqlite3.Connection) -> None:
            with db:  # one transaction: commit on success, roll back on error
                db.execute("BEGIN")
                if run is not None:
                    db.execute(_UPSERT_RUN, _run_values(run))
                db.executemany(
                    "INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )

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
            for name, status, output, error, attempts, duration, reason, trace in db.execute(
                "SELECT name, status, output, error, attempts, duration, reason, trace FROM nodes "
                "WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            ):
                err = json.loads(error) if error else None
                row = NodeRow(run_id, name, status, output, err, attempts, duration, reason, trace)
                run.nodes.append(row)
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
