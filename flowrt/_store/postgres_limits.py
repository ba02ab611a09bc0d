"""``PostgresStore``'s run limits and rate limits: a new run admitted by its keys, a queued run
let start, the blockers of a queued run, and rate-limit permits, applying ``_store.limits`` and
``_store.rates`` on the database's clock.

Concurrent transactions are kept from taking one key twice by transaction-scoped advisory locks
on the keys, taken in sorted order and always before any row lock, except by a worker's claim,
which already holds its picked rows (``SKIP LOCKED``) and so only tries them: a key another
transaction has locked is left for the next claim, and no two transactions wait for each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg

from . import claims as _claims
from . import limits as _limits
from . import rates as _rates
from .claims import Dialect
from .postgres_db import db_now, load
from .postgres_sql import NEW
from .protocol import Claim
from .records import RunKey, RunRow, new_values

T = TypeVar("T")

_SQL = Dialect("flowrt_runs", "%s", " FOR UPDATE")
INSERT_QUEUED = (
    f"INSERT INTO flowrt_runs ({NEW}) VALUES (%s, %s, %s, %s, 'queued', %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (run_id) DO NOTHING"
)


def lock_keys(db: psycopg.Connection[Any], keys: Sequence[str], wait: bool) -> bool:
    """Lock ``keys`` until the transaction ends (advisory locks, sorted); without ``wait``,
    False at once when another transaction holds one."""
    call = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    for key in sorted(keys):
        row = db.execute(f"SELECT {call}(hashtextextended(%s, 0))::text", (key,)).fetchone()
        if not wait and row is not None and row[0] != "true":
            return False
    return True


def _locked_load(db: Any, run_id: str) -> RunRow | None:
    return load(db, run_id, lock=True)


class PostgresLimits:
    """The limit methods of ``PostgresStore`` (see ``RunStore``)."""

    async def _call(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        raise NotImplementedError  # the store's: a pooled connection in a worker thread

    async def blockers(self, run_id: str) -> list[_limits.Blocker]:
        """See ``RunStore.blockers``."""

        def read(db: psycopg.Connection[Any]) -> list[_limits.Blocker]:
            found = db.execute(
                "SELECT started_at, status FROM flowrt_runs WHERE run_id = %s", (run_id,)
            ).fetchone()
            if found is None or found[1] != "queued":
                return []
            run = RunRow(run_id, "", "", "queued", found[0])
            run.limits = _limits.keys_of(db, _SQL, run_id)
            return _limits.blockers(db, _SQL, run)

        return await self._call(read)

    async def take_permit(
        self, limit: tuple[str, str], shape: tuple[float, int, float | None]
    ) -> tuple[float, bool]:
        """See ``RunStore.take_permit``."""

        def take(db: psycopg.Connection[Any]) -> tuple[float, bool]:
            with db.transaction():
                return _rates.take_permit(db, _SQL, limit, shape, db_now(db))

        return await self._call(take)


def admitted(db: psycopg.Connection[Any], run: RunRow) -> tuple[_limits.Admission, list[str]]:
    """Keep inserted run ``run``'s keys (locked) and apply its strategies (``_limits.admit``)."""
    _limits.save_keys(db, _SQL, run)
    return _limits.admit(db, _SQL, run, _locked_load, db_now(db))


def create(db: psycopg.Connection[Any], run: RunRow, owner: str, lease: float) -> Claim | None:
    """``claim(new=run)`` of a run with keys: inserted ``queued``, then started (``created``)
    if its keys are free, else left ``queued`` (or ended ``cancelled`` by its limit); None if a
    run of that id exists."""
    lock_keys(db, [limit.key for limit in run.limits], True)
    if db.execute(INSERT_QUEUED, new_values(run)).rowcount != 1:
        return None
    admission, _ = admitted(db, run)
    if admission == "free":
        _claims.take(db, _SQL, run.run_id, owner, db_now(db) + lease, by_hand=True)
        return Claim("created", 1)
    return Claim(admission, 0, load(db, run.run_id, lock=False))


def lock_own_keys(db: psycopg.Connection[Any], run_id: str) -> tuple[RunKey, ...]:
    """Lock stored run ``run_id``'s keys (before its row: see the module); return them."""
    keys = _limits.keys_of(db, _SQL, run_id)
    lock_keys(db, [limit.key for limit in keys], True)
    return keys


def may_start(
    db: psycopg.Connection[Any], run: RunRow, keys: tuple[RunKey, ...] | None, *, wait: bool
) -> bool:
    """Whether stored run ``run``, not holding its keys, may take them now (``keys``: known
    already, and locked; None: read and locked here, waiting for them only with ``wait``)."""
    if keys is None:
        run.limits = _limits.keys_of(db, _SQL, run.run_id)
        return _limits.may_start(db, _SQL, run, lock_keys, wait=wait)
    run.limits = keys
    return _limits.may_start(db, _SQL, run, _limits.no_lock, wait=wait)


def notify_freed(db: psycopg.Connection[Any], run_id: str) -> None:
    """Run ``run_id`` ended: wake idle workers if it held keys (queued runs may start)."""
    db.execute(
        "SELECT pg_notify('flowrt_work', '') WHERE EXISTS "
        "(SELECT 1 FROM flowrt_run_keys WHERE run_id = %s)",
        (run_id,),
    )


__all__: Sequence[str] = [
    "INSERT_QUEUED",
    "PostgresLimits",
    "admitted",
    "create",
    "lock_keys",
    "lock_own_keys",
    "may_start",
    "notify_freed",
]
