"""The SQL of ``SQLiteStore``: its tables, view and migrations, and the statements shared by its
methods."""

from __future__ import annotations

import sqlite3

from .._errors import StoreTooNew

RUNS_V1 = """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, input TEXT NOT NULL, definition TEXT,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT, output TEXT,
    started_at TEXT NOT NULL, finished_at TEXT, retry_due REAL)"""
NODES_V2 = """CREATE VIEW nodes AS
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
SIGNALS = """CREATE TABLE IF NOT EXISTS {prefix}signals (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL, payload TEXT NOT NULL,
    key TEXT, consumed_by TEXT, sent_at TEXT NOT NULL, PRIMARY KEY (run_id, seq))"""
SIGNAL_KEYS = (
    "CREATE UNIQUE INDEX IF NOT EXISTS {prefix}signals_key ON {prefix}signals "
    "(run_id, name, key) WHERE key IS NOT NULL"
)
WAITS = """CREATE TABLE IF NOT EXISTS {prefix}waits (
    run_id TEXT NOT NULL, attempt INTEGER NOT NULL, node TEXT NOT NULL, signal TEXT,
    due DOUBLE PRECISION, ended INTEGER NOT NULL DEFAULT 0, seq INTEGER, child TEXT,
    PRIMARY KEY (run_id, attempt, node))"""
RUN_KEYS = """CREATE TABLE IF NOT EXISTS {prefix}run_keys (
    run_id TEXT NOT NULL, key TEXT NOT NULL, max_runs INTEGER NOT NULL, strategy TEXT NOT NULL,
    started_at TEXT NOT NULL, queued INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (run_id, key))"""
RUN_KEYS_BY_KEY = "CREATE INDEX IF NOT EXISTS {prefix}run_keys_key ON {prefix}run_keys (key)"
RUN_KEYS_QUEUED = (
    "CREATE INDEX IF NOT EXISTS {prefix}run_keys_queued ON {prefix}run_keys "
    "(key, started_at, run_id) WHERE queued = 1"
)
RATE_LIMITS = """CREATE TABLE IF NOT EXISTS {prefix}rate_limits (
    name TEXT NOT NULL, key TEXT NOT NULL, tat DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (name, key))"""
PARKED = "CREATE INDEX IF NOT EXISTS {prefix}runs_parked ON {prefix}runs (status, retry_due)"
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: runs and their node record batches (flowrt 0.1)
        RUNS_V1,
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
        NODES_V2,
    ),
    (  # 3: cancel requests; claims since a node last finished (poison runs); the run's
        # deadline (seconds) and where its workflow's code lives
        "ALTER TABLE runs ADD COLUMN cancel TEXT",
        "ALTER TABLE runs ADD COLUMN stalled INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN timeout REAL",
        "ALTER TABLE runs ADD COLUMN source TEXT",
    ),
    (  # 4: each run's mailbox of signals, and its wait and sleep nodes with their due times;
        # parked runs found by due time (a claim skips the many parked runs not due); a child
        # run's parent run and node
        SIGNALS.format(prefix=""),
        SIGNAL_KEYS.format(prefix=""),
        WAITS.format(prefix=""),
        PARKED.format(prefix=""),
        "ALTER TABLE runs ADD COLUMN parent_run_id TEXT",
        "ALTER TABLE runs ADD COLUMN parent_node TEXT",
        "CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_run_id) "
        "WHERE parent_run_id IS NOT NULL",
    ),
    (  # 5: each run's keys under its run limits; each rate limit's GCRA row
        RUN_KEYS.format(prefix=""),
        RUN_KEYS_BY_KEY.format(prefix=""),
        RUN_KEYS_QUEUED.format(prefix=""),
        RATE_LIMITS.format(prefix=""),
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
COLUMNS = (
    "run_id, workflow, input, definition, status, attempts, error, output, started_at, "
    "finished_at, retry_due, owner, lease_until, claim, cancel, stalled, timeout, source, "
    "parent_run_id, parent_node"
)
# A new run's columns (the rest take their defaults).
NEW = (
    "run_id, workflow, input, definition, status, attempts, started_at, timeout, source, "
    "parent_run_id, parent_node"
)
INSERT_QUEUED = (
    f"INSERT OR IGNORE INTO runs ({NEW}) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)"
)
# An owner's writes: they renew its lease, reset ``stalled`` when a node finished, and return a
# pending cancel request (no row: another owner holds the run).
UPDATE_RUN = (
    "UPDATE runs SET status = ?, attempts = ?, error = ?, output = ?, finished_at = ?, "
    "retry_due = ?, lease_until = ?, owner = CASE WHEN ? THEN NULL ELSE owner END, "
    "cancel = CASE WHEN ? THEN NULL ELSE cancel END, "
    "stalled = CASE WHEN ? THEN 0 ELSE stalled END "
    "WHERE run_id = ? AND claim = ? RETURNING cancel"
)
RENEW = (
    "UPDATE runs SET lease_until = ?, stalled = CASE WHEN ? THEN 0 ELSE stalled END "
    "WHERE run_id = ? AND claim = ? RETURNING cancel"
)
# A run a worker may claim (the parameters: now, three times).
READY = (
    "(status = 'queued' OR (status = 'running' AND (owner IS NULL OR lease_until <= ?)) "
    "OR (status IN ('retrying', 'waiting') AND retry_due <= ? "
    "AND (owner IS NULL OR lease_until IS NULL OR lease_until <= ?)))"
)


def migrate(db: sqlite3.Connection, name: str = "") -> int:
    """Bring the schema to ``SCHEMA_VERSION`` in one transaction (a concurrent migrator waits
    for the lock, then finds nothing to do); return the version. A new file gets incremental
    auto-vacuum (``prune`` gives its space back).

    Raises:
        StoreTooNew: the file's schema is newer than ``SCHEMA_VERSION``.
    """
    if db.execute("PRAGMA user_version").fetchone()[0] == 0:
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes before the first table
    with db:
        db.execute("BEGIN IMMEDIATE")
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreTooNew(name or "(sqlite)", version, SCHEMA_VERSION)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                db.execute(statement)
        if version < SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return max(version, SCHEMA_VERSION)
