"""``PostgresStore``: durable runs in PostgreSQL, shared by every process and host that reaches
the database (``pip install flowrt[postgres]``: psycopg 3 and psycopg-pool).

The same ``RunStore`` as ``SQLiteStore``: a run is claimed in one transaction (``SELECT ... FOR
UPDATE``), every write names the claim number and is refused (``LeaseLost``) once another owner
has claimed the run, and an owner's lease is renewed by its writes. Times (leases, due retries)
come from the database's clock, never a host's. Its tables are ``flowrt_runs`` and
``flowrt_node_batches`` (with the view ``flowrt_nodes``), versioned in ``flowrt_schema`` and
created or migrated on first use (under an advisory lock: concurrent starters wait, then find
nothing to do). Calls run on pooled synchronous connections in worker threads, so the store
works on asyncio and trio alike; a call in progress always completes before its caller's
cancellation is delivered.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import psycopg
from psycopg_pool import ConnectionPool

from ._errors import LeaseLost
from ._store import claims as _claims
from ._store import family as _family
from ._store import limits as _limits
from ._store import postgres_limits as _lim
from ._store.claims import CancelOutcome, Dialect
from ._store.limits import HOLDS
from ._store.postgres_db import (
    db_now,
    insert_running,
    load,
    migrate,
    nodes_of,
    notified,
    on_database_clock,
    prune_ended,
)
from ._store.postgres_limits import PostgresLimits
from ._store.postgres_mail import PostgresMail, parent_woken, wake
from ._store.postgres_sql import (
    COLUMNS,
    MIGRATIONS,
    PICK_READY,
    RENEW,
    SCHEMA_VERSION,
    UPDATE_RUN,
)
from ._store.protocol import Claim, Closing, listed
from ._store.records import RunRow, new_values, run_row, update_values

_SQL = Dialect("flowrt_runs", "%s", " FOR UPDATE")

T = TypeVar("T")


class PostgresStore(PostgresMail, PostgresLimits, Closing):
    """A ``RunStore`` in PostgreSQL. It creates or migrates its tables on first use. Close it
    when done (``close()``, ``await aclose()``, or use it as a context manager).

    Args:
        url: a libpq connection string (``postgresql://user@host:5432/app``).
        max_connections: the pool's size (calls beyond it wait for a connection).
        lease_seconds: how long a run's owner is presumed alive after each of its writes.
        heartbeat_seconds: how often a run's owner renews its lease when it has nothing else
            to write.
        park_after_seconds: a node retry wait at least this long marks the run ``waiting``.
        wait_seconds: how long a call waits for a connection before it fails (the database
            is down or unreachable): an outage surfaces quickly, and callers retry (a worker
            with backoff; a router answers 503).
        poll_seconds: how often a run waiting in this process for a signal looks for it when
            no notification came (a notification is seen at once).
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 10,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float = 5.0,
        park_after_seconds: float = 1.0,
        wait_seconds: float = 5.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.url = url
        self.poll_seconds = poll_seconds
        self.wait_seconds = wait_seconds
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.park_after_seconds = park_after_seconds
        self._max = max_connections
        self._pool: ConnectionPool[Any] | None = None
        self._listening: psycopg.Connection[Any] | None = None  # LISTEN flowrt_work
        self._signal_listener: psycopg.Connection[Any] | None = None  # LISTEN flowrt_signal
        self._signal_waiters: dict[str, list[anyio.Event]] = {}
        self._signal_reader: anyio.Lock | None = None
        self._lock = threading.Lock()
        self._limiter: anyio.CapacityLimiter | None = None

    def __repr__(self) -> str:
        safe = psycopg.conninfo.conninfo_to_dict(self.url)
        safe.pop("password", None)
        return f"PostgresStore({psycopg.conninfo.make_conninfo(**safe)!r})"  # type: ignore[arg-type]

    def _connections(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._pool is None:
                # One direct connection first: a bad URL or a server that is down fails here at
                # once (the pool would retry in the background), and the schema is brought up.
                with psycopg.connect(self.url) as db:
                    migrate(db, repr(self))
                # Checked on checkout: after a server restart a pooled connection is dead.
                # No idle minimum: a pool keeping one would reconnect (and log) in the
                # background all through a database outage; a call connects when it needs to.
                self._pool = ConnectionPool(
                    self.url,
                    min_size=0,
                    timeout=self.wait_seconds,
                    max_size=self._max,
                    open=True,
                    check=ConnectionPool.check_connection,
                )
            return self._pool

    async def _call(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max)

        def pooled() -> T:
            with self._connections().connection() as db:
                return fn(db)

        # Not abandoned on cancel: a transaction in progress always completes (or fails) first.
        return await anyio.to_thread.run_sync(pooled, limiter=self._limiter)

    def close(self) -> None:
        """Close the pool's connections (the next call opens a new pool)."""
        with self._lock:
            pool, self._pool = self._pool, None
            listening, self._listening = self._listening, None
            signals, self._signal_listener = self._signal_listener, None
        if pool is not None:
            pool.close()
        for connection in (listening, signals):
            if connection is not None:
                connection.close()

    async def aclose(self) -> None:
        """``close()`` from async code."""
        await anyio.to_thread.run_sync(self.close)

    async def upgrade(self) -> int:
        """Create or migrate the schema (idempotent); return its version."""
        return await self._call(lambda db: migrate(db, repr(self)))

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
        lease = self.lease_seconds

        def claim(db: psycopg.Connection[Any]) -> Claim:
            with db.transaction():
                if new is not None and new.limits:
                    created = _lim.create(db, new, owner, lease)
                    if created is not None:
                        return created
                elif new is not None and insert_running(db, new, owner, lease):
                    return Claim("created", 1)
                _lim.lock_own_keys(db, run_id)  # before the run's row (see _lim)
                found = load(db, run_id, lock=True)
                if found is None:
                    return Claim("missing")
                now = db_now(db)
                decision = _claims.decide(found, now, reopen=reopen, due=due, queued=queued)
                if decision != "claimed":
                    return Claim(decision, found.claim, found)
                if found.status not in HOLDS and not _lim.may_start(db, found):
                    return Claim("queued", found.claim, found)
                _claims.take(db, _SQL, run_id, owner, now + lease, by_hand=True)
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
        ``flowrt_nodes`` view shows each node's last record)."""
        lease, progress = self.lease_seconds, bool(records)

        def write(db: psycopg.Connection[Any]) -> dict[str, str] | None:
            with db.transaction():  # one transaction: commit on success, roll back on error
                if run is None:
                    updated = db.execute(RENEW, (lease, progress, run_id, token)).fetchall()
                else:
                    moved = on_database_clock(db, run)
                    values = update_values(moved, lease, release, token, progress)
                    updated = db.execute(UPDATE_RUN, values).fetchall()
                if len(updated) != 1:
                    raise LeaseLost(run_id)  # rolls back: nothing written
                if release and run is not None and run.status == "waiting":
                    wake(db, run_id)  # a signal it did not see yet, or a child that ended
                if run is not None and release:
                    _released(db, run)
                if records:
                    db.execute(
                        "INSERT INTO flowrt_node_batches (run_id, attempt, records) "
                        "VALUES (%s, %s, %s)",
                        (run_id, attempt, "[" + ", ".join(records) + "]"),
                    )
                request: str | None = updated[0][0]
                return json.loads(request) if request else None

        return await self._call(write)

    async def enqueue(self, run: RunRow) -> bool:
        """See ``RunStore.enqueue``: the insert and a ``NOTIFY flowrt_work`` (idle workers
        wake at once) in one transaction."""

        def insert(db: psycopg.Connection[Any]) -> bool:
            with db.transaction():
                if run.limits:
                    _lim.lock_keys(db, [limit.key for limit in run.limits])
                if db.execute(_lim.INSERT_QUEUED, new_values(run)).rowcount != 1:
                    return False
                if run.limits:
                    parent_woken(db, _lim.admitted(db, run)[1])
                db.execute("NOTIFY flowrt_work")
                return True

        return await self._call(insert)

    async def claim_ready(
        self, owner: str, workflows: Sequence[str], limit: int, *, max_claims: int | None = None
    ) -> list[Claim]:
        """See ``RunStore.claim_ready``: the ready runs are picked and locked (``FOR UPDATE
        SKIP LOCKED``: concurrent workers each get others, none waits for another's
        transaction), then claimed, each returned as it was."""
        if not workflows or limit < 1:
            return []
        lease = self.lease_seconds

        def claim(db: psycopg.Connection[Any]) -> list[Claim]:
            with db.transaction():
                now = db_now(db)
                _claims.expire_dead(db, _SQL, now)
                claims, chosen = [], {"w": list(workflows), "n": limit, "m": limit + 64}
                picked, locked = _lim.picked(db.execute(PICK_READY, chosen).fetchall())
                allowed = _limits.startable(db, _SQL, picked, locked)
                for run in picked:
                    verdict = _claims.verdict(run, max_claims)
                    if verdict != "claim":
                        _claims.end_unclaimed(db, _SQL, run, verdict, max_claims or 0)
                        continue
                    if run.status != "queued":
                        run.nodes = nodes_of(db, run)
                    elif run.run_id not in allowed:
                        continue  # its key is full, or being locked by another claim
                    _claims.take(db, _SQL, run.run_id, owner, now + lease, by_hand=False)
                    claims.append(Claim("claimed", run.claim + 1, run))
                _limits.taken(db, _SQL, [claim.run for claim in claims])
                return claims

        return await self._call(claim)

    async def wait_for_work(self, timeout: float) -> None:
        """See ``RunStore.wait_for_work``: ``LISTEN flowrt_work`` on a connection of its own,
        waited on in a worker thread in steps of at most 0.2 s (a cancellation is seen within
        one step; the thread never outlives the call)."""
        listener = await anyio.to_thread.run_sync(self._listener)
        deadline = anyio.current_time() + timeout
        try:
            while (left := deadline - anyio.current_time()) > 0:
                step = min(left, 0.2)
                if await anyio.to_thread.run_sync(notified, listener, step):
                    return
        except psycopg.Error:  # the server went away: the next call listens anew
            await anyio.to_thread.run_sync(listener.close)
            raise

    def _listener(self) -> psycopg.Connection[Any]:
        with self._lock:
            if self._listening is None or self._listening.closed:
                self._listening = psycopg.connect(self.url, autocommit=True)
                self._listening.execute("LISTEN flowrt_work")
            return self._listening

    async def load_run(self, run_id: str) -> RunRow | None:
        """See ``RunStore.load_run``."""

        def read(db: psycopg.Connection[Any]) -> RunRow | None:
            run = load(db, run_id, lock=False)
            if run is not None:
                run.status = _claims.reported_status(run, db_now(db))
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

        def read(db: psycopg.Connection[Any]) -> list[RunRow]:
            source = ("flowrt_runs", COLUMNS, "%s")
            return listed(db, source, db_now(db), (status, workflow, parent), (limit, offset))

        return await self._call(read)

    async def due_runs(self, now: float | None = None) -> list[RunRow]:
        """See ``RunStore.due_runs`` (``now`` defaults to the database's clock)."""

        def read(db: psycopg.Connection[Any]) -> list[RunRow]:
            clock = db_now(db)
            query = (
                f"SELECT {COLUMNS} FROM flowrt_runs WHERE retry_due <= %s "
                "AND status IN ('retrying', 'waiting') AND cancel IS NULL "
                "AND (owner IS NULL OR lease_until IS NULL OR lease_until <= %s) ORDER BY retry_due"
            )
            at = clock if now is None else now
            with db.transaction():
                _claims.expire_dead(db, _SQL, clock)
                return [run_row(row) for row in db.execute(query, (at, clock))]

        return await self._call(read)

    async def cancel(
        self, run_id: str, *, reason: str | None = None, by: str = ""
    ) -> CancelOutcome:
        """See ``RunStore.cancel``."""

        def cancel(db: psycopg.Connection[Any]) -> CancelOutcome:
            with db.transaction():
                found = (run_id, load(db, run_id, lock=True))
                request = {"reason": reason or "", "by": by}
                locked = functools.partial(load, lock=True)
                outcome, parents = _family.cancel_family(
                    db, _SQL, found, locked, db_now(db), request
                )
                parent_woken(db, parents)
                return outcome

        return await self._call(cancel)

    async def prune(self, older_than: float) -> int:
        """See ``RunStore.prune`` (ages by the database's clock)."""
        return await self._call(lambda db: prune_ended(db, older_than))


def _released(db: psycopg.Connection[Any], run: RunRow) -> None:
    """Run ``run`` was given up by its owner: a child that ended wakes its parent. (A run that
    ended freeing run-limit keys wakes nobody: its worker's slot is free, and it claims at
    once; other workers look at their next poll.)"""
    parent = _family.child_ended(db, _SQL, run, db_now(db))
    parent_woken(db, [parent] if parent else [])


__all__: Sequence[str] = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore", "migrate"]
