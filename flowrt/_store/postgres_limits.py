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
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from . import claims as _claims
from . import limits as _limits
from . import rates as _rates
from .claims import Dialect
from .postgres_db import db_now, load
from .postgres_sql import NEW
from .protocol import Claim
from .records import RunRow, new_values

T = TypeVar("T")

_SQL = Dialect("flowrt_runs", "%s", " FOR UPDATE")
INSERT_QUEUED = (
    f"INSERT INTO flowrt_runs ({NEW}) VALUES (%s, %s, %s, %s, 'queued', %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (run_id) DO NOTHING"
)


def lock_keys(db: psycopg.Connection[Any], keys: Sequence[str]) -> None:
    """Lock ``keys`` until the transaction ends (advisory locks, in sorted order: waiting for
    another transaction that holds one)."""
    for key in sorted(keys):
        db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))::text", (key,))


def picked(rows: Sequence[Sequence[Any]]) -> tuple[list[RunRow], _limits.Locker]:
    """The runs ``PICK_READY`` picked (columns, keys, whether their keys were locked), and
    what tells ``startable`` which keys are locked (those of the runs that locked all)."""
    runs, locked = [], set[str]()
    for row in rows:
        run = _limits.keyed(row[:-1])
        runs.append(run)
        if row[-1]:
            locked.update(limit.key for limit in run.limits)
    return runs, lambda db, keys: locked.intersection(keys)


def _locked_load(db: Any, run_id: str) -> RunRow | None:
    return load(db, run_id, lock=True)


class PostgresLimits:
    """The limit methods of ``PostgresStore`` (see ``RunStore``)."""

    if TYPE_CHECKING:  # the store's own (a pooled connection in a worker thread)

        async def _call(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T: ...

    async def blockers(self, run_id: str) -> list[_limits.Blocker]:
        """See ``RunStore.blockers``."""

        return await self._call(lambda db: _limits.queued_blockers(db, _SQL, run_id))

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
    lock_keys(db, [limit.key for limit in run.limits])
    if db.execute(INSERT_QUEUED, new_values(run)).rowcount != 1:
        return None
    admission, _ = admitted(db, run)
    if admission == "free":
        _claims.take(db, _SQL, run.run_id, owner, db_now(db) + lease, by_hand=True)
        _limits.left_queue(db, _SQL, [run.run_id])
        return Claim("created", 1)
    return Claim(admission, 0, load(db, run.run_id, lock=False))


def lock_own_keys(db: psycopg.Connection[Any], run_id: str) -> None:
    """Lock stored run ``run_id``'s keys (before its row: see the module)."""
    lock_keys(db, [limit.key for limit in _limits.keys_of(db, _SQL, run_id)])


def may_start(db: psycopg.Connection[Any], run: RunRow) -> bool:
    """Whether stored run ``run``, not holding its keys (locked: ``lock_own_keys``), may take
    them now."""
    run.limits = _limits.keys_of(db, _SQL, run.run_id)
    return run.run_id in _limits.startable(db, _SQL, [run], None)


__all__: Sequence[str] = [
    "INSERT_QUEUED",
    "PostgresLimits",
    "admitted",
    "create",
    "lock_keys",
    "lock_own_keys",
    "may_start",
    "picked",
]
