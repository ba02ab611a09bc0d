"""``PostgresStore``'s work on one connection (in a worker thread): its schema migration, and
the statements its methods share (a run's insert and load, its nodes, the database's clock)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from .._errors import StoreTooNew
from .postgres_sql import COLUMNS, MIGRATION_LOCK, MIGRATIONS, NEW, NOW, SCHEMA_VERSION
from .records import NodeRow, RunRow, new_values, node_rows, run_row


def migrate(db: psycopg.Connection[Any], name: str = "") -> int:
    """Bring the schema to ``SCHEMA_VERSION`` in one transaction; return the version.

    Raises:
        StoreTooNew: the database's schema is newer than ``SCHEMA_VERSION``.
    """
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS flowrt_schema (version INTEGER NOT NULL)")
        row = db.execute("SELECT max(version) FROM flowrt_schema").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version > SCHEMA_VERSION:
            raise StoreTooNew(name or "(postgresql)", version, SCHEMA_VERSION)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                db.execute(statement)
            db.execute("INSERT INTO flowrt_schema (version) VALUES (%s)", (number,))
    return max(version, SCHEMA_VERSION)


def notified(listener: psycopg.Connection[Any], timeout: float) -> bool:
    """Whether a notification came within ``timeout`` seconds (all those pending are taken)."""
    return any(True for _ in listener.notifies(timeout=timeout, stop_after=1))


def on_database_clock(db: psycopg.Connection[Any], run: RunRow) -> RunRow:
    """``run`` with its due time (computed on this host's clock) moved to the database's, by
    which workers decide that it is due: hosts whose clocks differ agree on it."""
    if run.retry_due is None:
        return run
    return dataclasses.replace(run, retry_due=run.retry_due + db_now(db) - time.time())


def db_now(db: psycopg.Connection[Any]) -> float:
    row = db.execute(f"SELECT {NOW}").fetchone()
    assert row is not None
    return float(row[0])


def insert_running(db: psycopg.Connection[Any], run: RunRow, owner: str, lease: float) -> bool:
    """Insert ``run`` as ``running`` under ``owner``; False if a run of that id exists."""
    inserted = db.execute(
        f"INSERT INTO flowrt_runs ({NEW}, owner, lease_until, claim, stalled) VALUES (%s, %s, "
        f"%s, %s, 'running', %s, %s, %s, %s, %s, %s, %s, {NOW} + %s, 1, 1) "
        "ON CONFLICT (run_id) DO NOTHING",
        (*new_values(run), owner, lease),
    )
    return inserted.rowcount == 1


def load(db: psycopg.Connection[Any], run_id: str, *, lock: bool) -> RunRow | None:
    """The run as stored (its raw status), with its current attempt's node records; with
    ``lock``, its row stays locked until the transaction ends."""
    query = f"SELECT {COLUMNS} FROM flowrt_runs WHERE run_id = %s"
    found = db.execute(query + (" FOR UPDATE" if lock else ""), (run_id,)).fetchone()
    if found is None:
        return None
    run = run_row(found)
    run.nodes = nodes_of(db, run)
    return run


def nodes_of(db: psycopg.Connection[Any], run: RunRow) -> list[NodeRow]:
    """Each node's last record of the run's current attempt."""
    batches = db.execute(
        "SELECT records FROM flowrt_node_batches WHERE run_id = %s AND attempt = %s ORDER BY id",
        (run.run_id, run.attempts),
    )
    return node_rows(run.run_id, [batch for (batch,) in batches])


def prune_ended(db: psycopg.Connection[Any], older_than: float) -> int:
    """Delete the runs that ended more than ``older_than`` seconds ago (by the database's
    clock), with their nodes, signals, waits and keys; return how many."""
    ended = (
        "status IN ('success', 'failure', 'cancelled') AND finished_at < "
        "to_char((clock_timestamp() - make_interval(secs => %s)) AT TIME ZONE 'UTC', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\')'
    )
    tables = ("flowrt_node_batches", "flowrt_signals", "flowrt_waits", "flowrt_run_keys")
    with db.transaction():
        for table in tables:
            db.execute(
                f"DELETE FROM {table} WHERE run_id IN "
                f"(SELECT run_id FROM flowrt_runs WHERE {ended})",
                (older_than,),
            )
        deleted = db.execute(f"DELETE FROM flowrt_runs WHERE {ended}", (older_than,))
        return deleted.rowcount


__all__: Sequence[str] = [
    "db_now",
    "insert_running",
    "load",
    "migrate",
    "nodes_of",
    "notified",
    "on_database_clock",
    "prune_ended",
]
