"""``SQLiteStore``'s mailbox: signals kept and consumed, waits begun and decided, each one
``BEGIN IMMEDIATE`` transaction applying ``_store.mailbox``'s rules on the host's clock. SQLite
cannot notify: a process waiting for a signal looks again every ``poll_seconds``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import anyio

from . import family as _family
from . import mailbox as _mail
from .claims import Dialect
from .mailbox import Decided, OpenWait, StoredSignal

T = TypeVar("T")

_SQL = Dialect("runs", "?")


class SQLiteMail:
    """The mailbox methods of ``SQLiteStore`` (see ``RunStore``)."""

    poll_seconds: float

    if TYPE_CHECKING:  # the store's own (one call at a time on its worker thread)

        async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def _write(self, fn: Callable[[sqlite3.Connection, float], T]) -> T:
        """``fn(db, now)`` in one ``BEGIN IMMEDIATE`` transaction."""

        def write(db: sqlite3.Connection) -> T:
            with db:
                db.execute("BEGIN IMMEDIATE")
                return fn(db, time.time())

        return await self._call(write)

    async def send_signal(
        self, run_id: str, signal: str, payload: str, key: str | None = None
    ) -> tuple[int, bool]:
        """See ``RunStore.send_signal``."""
        return await self._write(
            lambda db, now: _mail.send(db, _SQL, run_id, (signal, payload, key), now)
        )

    async def begin_wait(
        self, run_id: str, attempt: int, node: str, signal: str | None, seconds: float | None
    ) -> float | None:
        """See ``RunStore.begin_wait``."""

        def begin(db: sqlite3.Connection, now: float) -> float | None:
            due = _mail.begin(db, _SQL, (run_id, attempt, node, signal), seconds, now)
            return None if due is None else due - now

        return await self._write(begin)

    async def take_signal(
        self,
        wait: tuple[str, int, str, str],
        token: int,
        records: tuple[Callable[[str], str], str],
    ) -> Decided | None:
        """See ``RunStore.take_signal``."""
        return await self._write(lambda db, now: _mail.take(db, _SQL, wait, token, now, records))

    async def await_child(self, run_id: str, attempt: int, node: str, child: str) -> None:
        """See ``RunStore.await_child``."""
        await self._write(
            lambda db, now: _family.await_child(db, _SQL, (run_id, attempt, node, child))
        )

    async def end_wait(self, run_id: str, attempt: int, node: str) -> None:
        """See ``RunStore.end_wait``."""
        await self._write(lambda db, now: _family.end_wait(db, _SQL, (run_id, attempt, node)))

    async def signals(self, run_id: str) -> list[StoredSignal]:
        """See ``RunStore.signals``."""
        return await self._call(lambda db: _mail.signals_of(db, _SQL, run_id))

    async def waits(self, run_id: str) -> list[OpenWait]:
        """See ``RunStore.waits``."""
        return await self._call(lambda db: _mail.waits_of(db, _SQL, run_id))

    async def wait_for_signal(self, run_id: str, timeout: float) -> None:
        """See ``RunStore.wait_for_signal``: SQLite cannot notify, so this sleeps up to
        ``poll_seconds``."""
        await anyio.sleep(min(timeout, self.poll_seconds))


__all__: Sequence[str] = ["SQLiteMail"]
