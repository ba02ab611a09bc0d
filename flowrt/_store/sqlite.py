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
from typing import TypeVar

import anyio
import anyio.to_thread

from .._errors import LeaseLost
from . import claims as _claims
from . import family as _family
from . import limits as _limits
from . import mailbox as _mail
from . import sqlite_limits as _lim
from .claims import CancelOutcome, Dialect
from .limits import HOLDS, blocked_runs, keys_column, ready_filter
from .protocol import Claim, Closing, listed
from .records import NodeRow, RunRow, new_values, node_rows, run_row, update_values
from .sqlite_limits import SQLiteLimits
from .sqlite_mail import SQLiteMail
from .sqlite_sql import (
    COLUMNS,
    INSERT_QUEUED,
    MIGRATIONS,
    NEW,
    READY,
    RENEW,
    SCHEMA_VERSION,
    UPDATE_RUN,
    migrate,
)

_SQL = Dialect("runs", "?")
FREE, BLOCKED = ready_filter(_SQL), blocked_runs(_SQL)
KEYS = keys_column(_SQL, "json_group_array", "json_array")

T = TypeVar("T")

_setup_lock = threading.Lock()


class SQLiteStore(SQLiteMail, SQLiteLimits, Closing):
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
        poll_seconds: how often a run waiting in this process for a signal looks for it
            (SQLite cannot notify).
    """

    def __init__(
        self,
        path: str | Path = "flowrt.db",
        *,
        busy_timeout: float = 30.0,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 5.0,
        park_after_seconds: float = 1.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.poll_seconds = poll_seconds
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
            try:
                self._set_up(connection)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _set_up(self, connection: sqlite3.Connection) -> None:
        """WAL mode and the schema, retried while another process holds the file: switching to
        WAL from a read lock while another connection writes fails at once with "database is
        locked", without SQLite's busy wait (its deadlock rule), so it is retried here, in the
        store's worker thread, for up to ``busy_timeout`` seconds."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                with _setup_lock:  # in this process, one set-up at a time
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.execute("PRAGMA synchronous=NORMAL")
                    migrate(connection, str(self.path))
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.01)  # a worker thread's wait, never the event loop's

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)

        def locked() -> T:
            with self._lock:
                return fn(self._connect())

        # Not abandoned on cancel: a write in progress always completes (or fails) first.
        return await anyio.to_thread.run_sync(locked, limiter=self._limiter)

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
        return await self._call(lambda db: migrate(db, str(self.path)))

    async def claim(
        self,
        run_id: str,
        owner: str,
        *,
        new: RunRow | None = None,
        reopen: bool = False,
        due: bool = False,
        queued: bool = False,
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
                    if new.limits:
                        return _lim.create(db, new, owner, now + self.lease_seconds, _load)
                    _insert(db, new, owner, now + self.lease_seconds)
                    return Claim("created", 1)
                decision = _claims.decide(found, now, reopen=reopen, due=due, queued=queued)
                if decision != "claimed":
                    return Claim(decision, found.claim, found)
                if found.status not in HOLDS and not _lim.may_start(db, found):
                    return Claim("queued", found.claim, found)
                _claims.take(db, _SQL, run_id, owner, now + self.lease_seconds, by_hand=True)
                _limits.taken(db, _SQL, [found])
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
    ) -> dict[str, str] | None:
        """See ``RunStore.write``: the records go in as one row, a JSON array of them (the
        ``nodes`` view shows each node's last record)."""
        progress = bool(records)

        def write(db: sqlite3.Connection) -> dict[str, str] | None:
            with db:  # one transaction: commit on success, roll back on error
                db.execute("BEGIN IMMEDIATE")  # the write lock now (waits busy_timeout)
                lease = time.time() + self.lease_seconds
                if run is None:
                    updated = db.execute(RENEW, (lease, progress, run_id, token)).fetchall()
                else:
                    values = update_values(run, lease, release, token, progress)
                    updated = db.execute(UPDATE_RUN, values).fetchall()
                if len(updated) != 1:
                    raise LeaseLost(run_id)  # rolls back: nothing written
                if release and run is not None and run.status == "waiting":
                    _mail.wake(db, _SQL, run_id, time.time())  # a signal or a child's end
                if release and run is not None:
                    _family.child_ended(db, _SQL, run, time.time())
                if records:
                    db.execute(
                        "INSERT INTO node_batches (run_id, attempt, records) VALUES (?, ?, ?)",
                        (run_id, attempt, "[" + ", ".join(records) + "]"),
                    )
                request: str | None = updated[0][0]
                return json.loads(request) if request else None

        return await self._call(write)

    async def enqueue(self, run: RunRow) -> bool:
        """See ``RunStore.enqueue`` (idle workers poll: SQLite has no notifications)."""

        def insert(db: sqlite3.Connection) -> bool:
            with db:
                db.execute("BEGIN IMMEDIATE")
                inserted = db.execute(INSERT_QUEUED, new_values(run)).rowcount == 1
                if inserted and run.limits:
                    _lim.admitted(db, run, _load, time.time())
                return inserted

        return await self._call(insert)

    async def claim_ready(
        self, owner: str, workflows: Sequence[str], limit: int, *, max_claims: int | None = None
    ) -> list[Claim]:
        """See ``RunStore.claim_ready`` (one ``BEGIN IMMEDIATE`` transaction)."""
        if not workflows or limit < 1:
            return []
        names = ", ".join("?" * len(workflows))

        def claim(db: sqlite3.Connection) -> list[Claim]:
            with db:
                db.execute("BEGIN IMMEDIATE")
                now = time.time()
                _claims.expire_dead(db, _SQL, now)
                found = db.execute(
                    f"WITH {BLOCKED} SELECT {COLUMNS}, {KEYS} FROM runs "
                    f"WHERE workflow IN ({names}) AND {READY} AND {FREE} "
                    "ORDER BY started_at LIMIT ?",
                    (*workflows, now, now, now, limit),
                ).fetchall()
                claims, picked = [], list(map(_limits.keyed, found))
                allowed = _limits.startable(db, _SQL, picked, None)  # by their run limits
                for run in picked:
                    verdict = _claims.verdict(run, max_claims)
                    if verdict != "claim":
                        _claims.end_unclaimed(db, _SQL, run, verdict, max_claims or 0)
                        continue
                    if run.status != "queued":
                        run.nodes = _nodes(db, run)
                    elif run.run_id not in allowed:
                        continue  # its key is full (an earlier run of this batch took it)
                    lease = now + self.lease_seconds
                    _claims.take(db, _SQL, run.run_id, owner, lease, by_hand=False)
                    claims.append(Claim("claimed", run.claim + 1, run))
                _limits.taken(db, _SQL, [claim.run for claim in claims])
                return claims

        return await self._call(claim)

    async def wait_for_work(self, timeout: float) -> None:
        """See ``RunStore.wait_for_work``: SQLite cannot notify, so this sleeps ``timeout``."""
        await anyio.sleep(timeout)

    async def load_run(self, run_id: str) -> RunRow | None:
        """See ``RunStore.load_run``."""

        def read(db: sqlite3.Connection) -> RunRow | None:
            run = _load(db, run_id)
            if run is not None:
                run.status = _claims.reported_status(run, time.time())
            return run

        return await self._call(read)

    async def list_runs(
        self,
        limit: int = 50,
        status: str | None = None,
        *,
        workflow: str | None = None,
        offset: int = 0,
        parent: str | None = None,
    ) -> list[RunRow]:
        """See ``RunStore.list_runs``."""

        def read(db: sqlite3.Connection) -> list[RunRow]:
            source = ("runs", COLUMNS, "?")
            return listed(db, source, time.time(), (status, workflow, parent), (limit, offset))

        return await self._call(read)

    async def due_runs(self, now: float | None = None) -> list[RunRow]:
        """See ``RunStore.due_runs``."""

        def read(db: sqlite3.Connection) -> list[RunRow]:
            clock = time.time()
            at = clock if now is None else now
            query = (
                f"SELECT {COLUMNS} FROM runs WHERE retry_due <= ? "
                "AND status IN ('retrying', 'waiting') AND cancel IS NULL "
                "AND (owner IS NULL OR lease_until IS NULL OR lease_until <= ?) ORDER BY retry_due"
            )
            with db:
                db.execute("BEGIN IMMEDIATE")
                _claims.expire_dead(db, _SQL, clock)
                return [run_row(row) for row in db.execute(query, (at, clock))]

        return await self._call(read)

    async def cancel(
        self, run_id: str, *, reason: str | None = None, by: str = ""
    ) -> CancelOutcome:
        """See ``RunStore.cancel``."""

        def cancel(db: sqlite3.Connection) -> CancelOutcome:
            with db:
                db.execute("BEGIN IMMEDIATE")
                found = (run_id, _load(db, run_id))
                request = {"reason": reason or "", "by": by}
                family = _family.cancel_family(db, _SQL, found, _load, time.time(), request)
                return family[0]

        return await self._call(cancel)

    async def prune(self, older_than: float) -> int:
        """See ``RunStore.prune``; the file's free pages are then given back to the file system
        (incremental vacuum; a file made by an older flowrt is vacuumed whole once, turning
        incremental vacuum on)."""
        cutoff = (datetime.now(UTC) - timedelta(seconds=older_than)).isoformat()

        def delete(db: sqlite3.Connection) -> int:
            with db:
                db.execute("BEGIN IMMEDIATE")
                ended = "status IN ('success', 'failure', 'cancelled') AND finished_at < ?"
                for table in ("node_batches", "signals", "waits", "run_keys"):
                    db.execute(
                        f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM runs "
                        f"WHERE {ended})",
                        (cutoff,),
                    )
                deleted: int = db.execute(f"DELETE FROM runs WHERE {ended}", (cutoff,)).rowcount
            _reclaim(db)
            return deleted

        return await self._call(delete)


def _reclaim(db: sqlite3.Connection) -> None:
    """Give free pages back to the file system (outside any transaction)."""
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # not incremental: convert once
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("VACUUM")
    else:
        db.execute("PRAGMA incremental_vacuum")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _insert(db: sqlite3.Connection, run: RunRow, owner: str, lease: float) -> None:
    db.execute(
        f"INSERT INTO runs ({NEW}, owner, lease_until, claim, stalled) "
        "VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, 1, 1)",
        (*new_values(run), owner, lease),
    )


def _load(db: sqlite3.Connection, run_id: str) -> RunRow | None:
    """The run as stored (its raw status), with its current attempt's node records."""
    found = db.execute(f"SELECT {COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if found is None:
        return None
    run = run_row(found)
    run.nodes = _nodes(db, run)
    return run


def _nodes(db: sqlite3.Connection, run: RunRow) -> list[NodeRow]:
    """Each node's last record of the run's current attempt."""
    query = "SELECT records FROM node_batches WHERE run_id = ? AND attempt = ? ORDER BY id"
    batches = db.execute(query, (run.run_id, run.attempts))
    return node_rows(run.run_id, [batch for (batch,) in batches])


__all__: Sequence[str] = ["MIGRATIONS", "SCHEMA_VERSION", "SQLiteStore", "migrate"]
