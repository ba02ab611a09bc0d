"""``SQLiteStore``: the embedded ``RunStore``, one SQLite file shared by the processes of one
host. Its connection is used from a worker thread, one call at a time; every write is one
``BEGIN IMMEDIATE`` transaction, so writers of several processes queue on the file's lock
(``busy_timeout``) instead of failing. Times (leases, due retries) are the host's wall clock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ._errors import LeaseLost
from ._records import RunRow, node_rows
from ._store import Claim, reported_status

T = TypeVar("T")

_RUNS_V1 = """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, input TEXT NOT NULL, definition TEXT,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT, output TEXT,
    started_at TEXT NOT NULL, finished_at TEXT, retry_due REAL)"""
_NODES_V2 = """CREATE VIEW nodes AS
    SELECT run_id, batch, name, status, output, error, attempts, duration, reason, due,
           CASE WHEN status = 'waiting' THEN attempts + 1 END AS next_attempt FROM (
        SELECT b.run_id AS run_id, b.id AS batch,
            json_extract(j.value, '$[0]') AS name, json_extract(j.value, '$[1]') AS status,
            json_extract(j.value, '$[2]') AS output, json_extract(j.value, '$[3]') AS error,
            json_extract(j.value, '$[4]') AS attempts, json_extract(j.value, '$[5]') AS duration,
            json_extract(j.value, '$[6]') AS reason, json_extract(j.value, '$[8]') AS due,
            row_number() OVER (PARTITION BY b.run_id, json_extract(j.value, '$[0]')
                               ORDER BY b.id DESC, j.key DESC) AS newest
        FROM runs AS r JOIN node_batches AS b ON b.run_id = r.run_id AND b.attempt = r.attempts,
             json_each(b.records) AS j)
    WHERE newest = 1"""
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: runs and their node record batches (flowrt 0.1)
        _RUNS_V1,
        "CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at)",
        "CREATE INDEX IF NOT EXISTS runs_due ON runs (retry_due) WHERE retry_due IS NOT NULL",
        "CREATE TABLE IF NOT EXISTS node_batches "
        "(id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, records TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS node_batches_run ON node_batches (run_id)",
    ),
    (  # 2: owners and leases; batches per workflow attempt; the nodes view: last records
        "ALTER TABLE runs ADD COLUMN owner TEXT",
        "ALTER TABLE runs ADD COLUMN lease_until REAL",
        "ALTER TABLE runs ADD COLUMN claim INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE node_batches ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1",
        "CREATE INDEX IF NOT EXISTS runs_status ON runs (status, started_at)",
        "DROP VIEW IF EXISTS nodes",
        _NODES_V2,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
_setup_lock = threading.Lock()
_COLUMNS = (
    "run_id, workflow, input, definition, status, attempts, error, output, started_at, "
    "finished_at, retry_due, owner, lease_until, claim"
)
_UPDATE_RUN = (
    "UPDATE runs SET status = ?, attempts = ?, error = ?, output = ?, finished_at = ?, "
    "retry_due = ?, lease_until = ?, owner = CASE WHEN ? THEN NULL ELSE owner END "
    "WHERE run_id = ? AND claim = ?"
)
_RENEW = "UPDATE runs SET lease_until = ? WHERE run_id = ? AND claim = ?"
_ENDED = ("success", "failure", "cancelled")
# A run a worker may claim (the parameters: now, three times).
_READY = (
    "(status = 'queued' OR (status = 'running' AND (owner IS NULL OR lease_until <= ?)) "
    "OR (status IN ('retrying', 'waiting') AND retry_due <= ? "
    "AND (owner IS NULL OR lease_until IS NULL OR lease_until <= ?)))"
)


def _json(value: dict[str, str] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _run_row(row: tuple[Any, ...]) -> RunRow:
    run_id, workflow, input, definition, status, attempts, error, output, *rest = row
    started, finished, due, owner, lease, claim = rest
    return RunRow(
        run_id, workflow, input, status, started, definition, attempts,
        json.loads(error) if error else None, output, finished, due, owner, lease, claim,
    )  # fmt: skip


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION`` in one transaction (a concurrent migrator waits
    for the lock, then finds nothing to do); return the version."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                db.execute(statement)
        if version < SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return max(version, SCHEMA_VERSION)


class SQLiteStore:
    """A ``RunStore`` in one SQLite file (WAL mode; safe for many runs and several processes
    of one host). It creates or migrates its schema on first use. Close it when done
    (``close()``, ``await aclose()``, or use it as a context manager).

    Args:
        path: the database file (created if missing).
        busy_timeout: seconds to wait for another process's write lock before failing.
        lease_seconds: how long a run's owner is presumed alive after each of its writes.
        heartbeat_seconds: how often a run's owner renews its lease when it has nothing else
            to write.
        park_after_seconds: a node retry wait at least this long marks the run ``waiting``
            (with the wait's due time) while it lasts.
    """

    def __init__(
        self,
        path: str | Path = "flowrt.db",
        *,
        busy_timeout: float = 30.0,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 5.0,
        park_after_seconds: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.park_after_seconds = park_after_seconds
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
            try:  # switching a new file to WAL needs it to itself: one set-up at a time
                with _setup_lock:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.execute("PRAGMA synchronous=NORMAL")
                    migrate(connection)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)

        def locked() -> T:
            with self._lock:
                return fn(self._connect())

        # Not abandoned on cancel: a write in progress always completes (or fails) first.
        return await anyio.to_thread.run_sync(locked, limiter=self._limiter)

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> SQLiteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def close(self) -> None:
        """Close the connection (the next call reopens it)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    async def aclose(self) -> None:
        """``close()`` from async code (waits for a call in progress in its thread)."""
        await anyio.to_thread.run_sync(self.close)

    async def upgrade(self) -> int:
        """Create or migrate the schema (idempotent); return its version."""
        return await self._call(migrate)

    async def claim(
        self, run_id: str, owner: str, *, new: RunRow | None = None, reopen: bool = False
    ) -> Claim:
        """See ``RunStore.claim``."""

        def claim(db: sqlite3.Connection) -> Claim:
            with db:
                db.execute("BEGIN IMMEDIATE")
                now = time.time()
                found = _load(db, run_id)
                if found is None:
                    if new is None:
                        return Claim("missing")
                    _insert(db, new, owner, now + self.lease_seconds)
                    return Claim("created", 1)
                if found.status == "success" or (found.status == "failure" and not reopen):
                    return Claim("finished", found.claim, found)
                if found.owner is not None and (found.lease_until or 0) > now:
                    return Claim("busy", found.claim, found)
                db.execute(
                    "UPDATE runs SET status = 'running', owner = ?, lease_until = ?, "
                    "claim = claim + 1, finished_at = NULL WHERE run_id = ?",
                    (owner, now + self.lease_seconds, run_id),
                )
                return Claim("claimed", found.claim + 1, found)

        return await self._call(claim)

    async def write(
        self,
        run_id: str,
        token: int,
        attempt: int,
        records: Sequence[str],
        run: RunRow | None = None,
        *,
        release: bool = False,
    ) -> None:
        """See ``RunStore.write``: the records go in as one row, a JSON array of them (the
        ``nodes`` view shows each node's last record)."""

        def write(db: sqlite3.Connection) -> None:
            with db:  # one transaction: commit on success, roll back on error
                db.execute("BEGIN IMMEDIATE")  # the write lock now (waits busy_timeout)
                lease = time.time() + self.lease_seconds
                if run is None:
                    updated = db.execute(_RENEW, (lease, run_id, token))
                else:
                    updated = db.execute(_UPDATE_RUN, _update_values(run, lease, release, token))
                if updated.rowcount != 1:
                    raise LeaseLost(run_id)  # rolls back: nothing written
                if records:
                    db.execute(
                        "INSERT INTO node_batches (run_id, attempt, records) VALUES (?, ?, ?)",
                        (run_id, attempt, "[" + ", ".join(records) + "]"),
                    )

        await self._call(write)

    async def enqueue(self, run: RunRow) -> bool:
        """See ``RunStore.enqueue`` (idle workers poll: SQLite has no notifications)."""

        def insert(db: sqlite3.Connection) -> bool:
            with db:
                db.execute("BEGIN IMMEDIATE")
                inserted = db.execute(
                    f"INSERT OR IGNORE INTO runs ({_COLUMNS}) VALUES (?, ?, ?, ?, 'queued', ?, "
                    "NULL, NULL, ?, NULL, NULL, NULL, NULL, 0)",
                    (run.run_id, run.workflow, run.input, run.definition, run.attempts,
                     run.started_at),
                )  # fmt: skip
                return inserted.rowcount == 1

        return await self._call(insert)

    async def claim_next(self, owner: str, workflows: Sequence[str]) -> Claim | None:
        """See ``RunStore.claim_next`` (one ``BEGIN IMMEDIATE`` transaction)."""
        if not workflows:
            return None
        names = ", ".join("?" * len(workflows))

        def claim(db: sqlite3.Connection) -> Claim | None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                now = time.time()
                found = db.execute(
                    f"SELECT run_id FROM runs WHERE workflow IN ({names}) AND {_READY} "
                    "ORDER BY started_at LIMIT 1",
                    (*workflows, now, now, now),
                ).fetchone()
                run = None if found is None else _load(db, found[0])
                if run is None:
                    return None
                db.execute(
                    "UPDATE runs SET status = 'running', owner = ?, lease_until = ?, "
                    "claim = claim + 1 WHERE run_id = ?",
                    (owner, now + self.lease_seconds, run.run_id),
                )
                return Claim("claimed", run.claim + 1, run)

        return await self._call(claim)

    async def wait_for_work(self, timeout: float) -> None:
        """See ``RunStore.wait_for_work``: SQLite cannot notify, so this sleeps ``timeout``."""
        await anyio.sleep(timeout)

    async def load_run(self, run_id: str) -> RunRow | None:
        """See ``RunStore.load_run``."""

        def read(db: sqlite3.Connection) -> RunRow | None:
            run = _load(db, run_id)
            if run is not None:
                run.status = reported_status(run, time.time())
            return run

        return await self._call(read)

    async def list_runs(self, limit: int = 50, status: str | None = None) -> list[RunRow]:
        """See ``RunStore.list_runs``."""

        def read(db: sqlite3.Connection) -> list[RunRow]:
            now = time.time()
            stored = "running" if status == "interrupted" else status
            where = "" if stored is None else "WHERE status = ?"
            query = f"SELECT {_COLUMNS} FROM runs {where} ORDER BY started_at DESC LIMIT ?"
            params = (limit,) if stored is None else (stored, limit)
            runs = []
            for row in db.execute(query, params):
                run = _run_row(row)
                run.status = reported_status(run, now)
                if status is None or run.status == status:
                    runs.append(run)
            return runs

        return await self._call(read)

    async def due_runs(self, now: float | None = None) -> list[RunRow]:
        """See ``RunStore.due_runs``."""

        def read(db: sqlite3.Connection) -> list[RunRow]:
            at = time.time() if now is None else now
            query = (
                f"SELECT {_COLUMNS} FROM runs WHERE retry_due <= ? "
                "AND status IN ('retrying', 'waiting') "
                "AND (owner IS NULL OR lease_until IS NULL OR lease_until <= ?) ORDER BY retry_due"
            )
            return [_run_row(row) for row in db.execute(query, (at, time.time()))]

        return await self._call(read)

    async def prune(self, older_than: float) -> int:
        """See ``RunStore.prune``."""
        cutoff = (datetime.now(UTC) - timedelta(seconds=older_than)).isoformat()

        def delete(db: sqlite3.Connection) -> int:
            with db:
                db.execute("BEGIN IMMEDIATE")
                ended = "status IN ('success', 'failure', 'cancelled') AND finished_at < ?"
                db.execute(
                    f"DELETE FROM node_batches WHERE run_id IN (SELECT run_id FROM runs "
                    f"WHERE {ended})",
                    (cutoff,),
                )
                return db.execute(f"DELETE FROM runs WHERE {ended}", (cutoff,)).rowcount

        return await self._call(delete)


def _update_values(run: RunRow, lease: float, release: bool, token: int) -> tuple[Any, ...]:
    return (
        run.status, run.attempts, _json(run.error), run.output, run.finished_at, run.retry_due,
        lease, release, run.run_id, token,
    )  # fmt: skip


def _insert(db: sqlite3.Connection, run: RunRow, owner: str, lease: float) -> None:
    db.execute(
        f"INSERT INTO runs ({_COLUMNS}) VALUES (?, ?, ?, ?, 'running', ?, NULL, NULL, ?, NULL, "
        "NULL, ?, ?, 1)",
        (
            run.run_id, run.workflow, run.input, run.definition, run.attempts, run.started_at,
            owner, lease,
        ),
    )  # fmt: skip


def _load(db: sqlite3.Connection, run_id: str) -> RunRow | None:
    """The run as stored (its raw status), with its current attempt's node records."""
    found = db.execute(f"SELECT {_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if found is None:
        return None
    run = _run_row(found)
    query = "SELECT records FROM node_batches WHERE run_id = ? AND attempt = ? ORDER BY id"
    run.nodes = node_rows(run_id, [batch for (batch,) in db.execute(query, (run_id, run.attempts))])
    return run


__all__: Sequence[str] = ["MIGRATIONS", "SCHEMA_VERSION", "SQLiteStore", "migrate"]
