"""The SQL of ``flowrt.postgres``: its tables, view and migrations, and the statements shared by
its methods."""

from __future__ import annotations

from .claims import Dialect
from .limits import blocked_runs, keys_column, ready_filter
from .sqlite_sql import (
    PARKED,
    RATE_LIMITS,
    RUN_KEYS,
    RUN_KEYS_BY_KEY,
    RUN_KEYS_QUEUED,
    SIGNAL_KEYS,
    SIGNALS,
    WAITS,
)

NOW = "extract(epoch from clock_timestamp())"
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
NODES_VIEW = """CREATE OR REPLACE VIEW flowrt_nodes AS
    SELECT run_id, batch, name, status, output, error, attempts, duration, reason, due,
           CASE WHEN status = 'waiting' THEN attempts + 1 END AS next_attempt FROM (
        SELECT b.run_id, b.id AS batch, r.value ->> 0 AS name, r.value ->> 1 AS status,
               r.value -> 2 AS output, r.value -> 3 AS error, (r.value ->> 4)::int AS attempts,
               (r.value ->> 5)::float8 AS duration, r.value ->> 6 AS reason,
               (r.value ->> 8)::float8 AS due,
               row_number() OVER (PARTITION BY b.run_id, r.value ->> 0
                                  ORDER BY b.id DESC, r.n DESC) AS newest
        FROM flowrt_runs AS runs
        JOIN flowrt_node_batches AS b ON b.run_id = runs.run_id AND b.attempt = runs.attempts,
             jsonb_array_elements(b.records::jsonb) WITH ORDINALITY AS r(value, n)) AS last
    WHERE newest = 1"""
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: runs with owners and leases; node record batches per workflow attempt; the view
        "CREATE TABLE IF NOT EXISTS flowrt_runs (run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL,"
        " input TEXT NOT NULL, definition TEXT, status TEXT NOT NULL, attempts INTEGER NOT NULL,"
        " error TEXT, output TEXT, started_at TEXT NOT NULL, finished_at TEXT,"
        " retry_due DOUBLE PRECISION, owner TEXT, lease_until DOUBLE PRECISION,"
        " claim INTEGER NOT NULL DEFAULT 0)",
        "CREATE INDEX IF NOT EXISTS flowrt_runs_started ON flowrt_runs (started_at)",
        "CREATE INDEX IF NOT EXISTS flowrt_runs_status ON flowrt_runs (status, started_at)",
        "CREATE INDEX IF NOT EXISTS flowrt_runs_due ON flowrt_runs (retry_due)"
        " WHERE retry_due IS NOT NULL",
        "CREATE TABLE IF NOT EXISTS flowrt_node_batches (id BIGSERIAL PRIMARY KEY,"
        " run_id TEXT NOT NULL, attempt INTEGER NOT NULL, records TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS flowrt_node_batches_run ON flowrt_node_batches"
        " (run_id, attempt)",
        NODES_VIEW,
    ),
    (  # 2: cancel requests; claims since a node last finished (poison runs); the run's
        # deadline (seconds) and where its workflow's code lives
        "ALTER TABLE flowrt_runs ADD COLUMN IF NOT EXISTS cancel TEXT",
        "ALTER TABLE flowrt_runs ADD COLUMN IF NOT EXISTS stalled INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE flowrt_runs ADD COLUMN IF NOT EXISTS timeout DOUBLE PRECISION",
        "ALTER TABLE flowrt_runs ADD COLUMN IF NOT EXISTS source TEXT",
    ),
    (  # 3: each run's mailbox of signals, and its wait and sleep nodes with their due times;
        # parked runs found by due time (a claim skips the many parked runs not due); a child
        # run's parent run and node
        SIGNALS.format(prefix="flowrt_"),
        SIGNAL_KEYS.format(prefix="flowrt_"),
        WAITS.format(prefix="flowrt_"),
        PARKED.format(prefix="flowrt_"),
        "CREATE INDEX IF NOT EXISTS flowrt_runs_unparked ON flowrt_runs (started_at) "
        "WHERE status <> 'waiting'",
        "ALTER TABLE flowrt_runs ADD COLUMN IF NOT EXISTS parent_run_id TEXT",
        "ALTER TABLE flowrt_runs ADD COLUMN IF NOT EXISTS parent_node TEXT",
        "CREATE INDEX IF NOT EXISTS flowrt_runs_parent ON flowrt_runs (parent_run_id) "
        "WHERE parent_run_id IS NOT NULL",
    ),
    (  # 4: each run's keys under its run limits; each rate limit's GCRA row
        RUN_KEYS.format(prefix="flowrt_"),
        RUN_KEYS_BY_KEY.format(prefix="flowrt_"),
        RUN_KEYS_QUEUED.format(prefix="flowrt_"),
        RATE_LIMITS.format(prefix="flowrt_"),
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
MIGRATION_LOCK = 7_287_011  # pg_advisory_xact_lock key: one migrator at a time

# An owner's writes: they renew its lease, reset ``stalled`` when a node finished, and return a
# pending cancel request (no row: another owner holds the run).
UPDATE_RUN = (
    "UPDATE flowrt_runs SET status = %s, attempts = %s, error = %s, output = %s, "
    f"finished_at = %s, retry_due = %s, lease_until = {NOW} + %s, "
    "owner = CASE WHEN %s THEN NULL ELSE owner END, "
    "cancel = CASE WHEN %s THEN NULL ELSE cancel END, "
    "stalled = CASE WHEN %s THEN 0 ELSE stalled END "
    "WHERE run_id = %s AND claim = %s RETURNING cancel"
)
RENEW = (
    f"UPDATE flowrt_runs SET lease_until = {NOW} + %s, "
    "stalled = CASE WHEN %s THEN 0 ELSE stalled END "
    "WHERE run_id = %s AND claim = %s RETURNING cancel"
)

# A run a worker may claim (by the database's clock).
READY = (
    f"(status = 'queued' OR (status = 'running' AND (owner IS NULL OR lease_until <= {NOW})) "
    f"OR (status IN ('retrying', 'waiting') AND retry_due <= {NOW} "
    f"AND (owner IS NULL OR lease_until IS NULL OR lease_until <= {NOW})))"
)

_PG = Dialect("flowrt_runs", "%s")
# Whether a picked queued run's keys are all locked now (advisory locks, tried: never waited
# for); a run without keys has none to lock (NULL).
TRY_KEYS = (
    "CASE WHEN flowrt_runs.status = 'queued' THEN (SELECT bool_and(pg_try_advisory_xact_lock("
    "hashtextextended(k.key, 0))) FROM flowrt_run_keys AS k "
    "WHERE k.run_id = flowrt_runs.run_id) END"
)
# Ready runs to claim (parameters: w workflows, n limit, m candidates of each kind), by the
# order they were enqueued, locked (``FOR UPDATE SKIP LOCKED``: concurrent workers each get
# others, none waits for another). Parked runs are looked up apart (by due time), so that many
# of them cost a claim nothing: the others come from an index without them.
# Queued runs whose keys are full are passed over; each run comes with its keys and whether
# they are locked, last (``_store.limits``).
PICK_READY = f"""WITH {blocked_runs(_PG)} SELECT {COLUMNS},
    {keys_column(_PG, "json_agg", "json_build_array")}, {TRY_KEYS}
    FROM flowrt_runs WHERE run_id IN (
        (SELECT run_id FROM flowrt_runs WHERE workflow = ANY(%(w)s) AND status <> 'waiting'
         AND {READY} AND {ready_filter(_PG)}
         ORDER BY started_at LIMIT %(m)s)
        UNION ALL
        (SELECT run_id FROM flowrt_runs WHERE workflow = ANY(%(w)s) AND status = 'waiting'
         AND retry_due <= {NOW} AND {READY} ORDER BY retry_due LIMIT %(m)s))
    AND {READY} ORDER BY started_at LIMIT %(n)s FOR UPDATE SKIP LOCKED"""
