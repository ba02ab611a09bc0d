"""``SQLiteStore``'s run limits and rate limits: a new run admitted by its keys, a queued run
let start, the blockers of a queued run, and rate-limit permits, each inside one ``BEGIN
IMMEDIATE`` transaction (serial: nothing to lock apart) applying ``_store.limits`` and
``_store.rates`` on the host's clock."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from . import claims as _claims
from . import limits as _limits
from . import rates as _rates
from .claims import Dialect
from .family import Load
from .protocol import Claim
from .records import RunRow, new_values
from .sqlite_sql import INSERT_QUEUED

T = TypeVar("T")

_SQL = Dialect("runs", "?")


class SQLiteLimits:
    """The limit methods of ``SQLiteStore`` (see ``RunStore``)."""

    if TYPE_CHECKING:  # the store's own (one call at a time on its worker thread)

        async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def blockers(self, run_id: str) -> list[_limits.Blocker]:
        """See ``RunStore.blockers``."""

        return await self._call(lambda db: _limits.queued_blockers(db, _SQL, run_id))

    async def take_permit(
        self, limit: tuple[str, str], shape: tuple[float, int, float | None]
    ) -> tuple[float, bool]:
        """See ``RunStore.take_permit``."""

        def take(db: sqlite3.Connection) -> tuple[float, bool]:
            with db:
                db.execute("BEGIN IMMEDIATE")
                return _rates.take_permit(db, _SQL, limit, shape, time.time())

        return await self._call(take)


def admitted(db: sqlite3.Connection, run: RunRow, load: Load, now: float) -> _limits.Admission:
    """Keep inserted run ``run``'s keys and apply its strategies (see ``_limits.admit``)."""
    _limits.save_keys(db, _SQL, run)
    return _limits.admit(db, _SQL, run, load, now)[0]


def create(db: sqlite3.Connection, run: RunRow, owner: str, lease: float, load: Load) -> Claim:
    """``claim(new=run)`` of a run with keys: inserted ``queued``, then started (``created``)
    if its keys are free, else left ``queued`` (or ended ``cancelled`` by its limit)."""
    db.execute(INSERT_QUEUED, new_values(run))
    admission = admitted(db, run, load, time.time())
    if admission == "free":
        _claims.take(db, _SQL, run.run_id, owner, lease, by_hand=True)
        _limits.left_queue(db, _SQL, [run.run_id])
        return Claim("created", 1)
    return Claim(admission, 0, load(db, run.run_id))


def may_start(db: sqlite3.Connection, run: RunRow) -> bool:
    """Whether stored run ``run``, not holding its keys, may take them now."""
    run.limits = _limits.keys_of(db, _SQL, run.run_id)
    return run.run_id in _limits.startable(db, _SQL, [run], None)


__all__: Sequence[str] = ["SQLiteLimits", "admitted", "create", "may_start"]
