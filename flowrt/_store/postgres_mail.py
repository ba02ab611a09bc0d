"""``PostgresStore``'s mailbox: signals kept and consumed, waits begun and decided, each one
transaction applying ``_store.mailbox``'s rules on the database's clock (the run's row locked
``FOR UPDATE``). A send notifies ``flowrt_signal`` (payload: the run id) for the processes
waiting in a run, and ``flowrt_work`` when it made a parked run due, for idle workers.

A process listens on one connection of its own: one waiting task at a time reads it (in a
worker thread, in steps of at most 0.2 s) and wakes the others whose run was named."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import psycopg

from . import family as _family
from . import mailbox as _mail
from .claims import Dialect
from .mailbox import Decided, OpenWait, StoredSignal
from .postgres_db import db_now

T = TypeVar("T")

_SQL = Dialect("flowrt_runs", "%s", " FOR UPDATE")


def send(
    db: psycopg.Connection[Any], run_id: str, signal: tuple[str, str, str | None]
) -> tuple[int, bool]:
    """``_mail.send`` with its notifications (sent when the transaction commits)."""
    seq, duplicate = _mail.send(db, _SQL, run_id, signal, db_now(db))
    if not duplicate:
        db.execute("SELECT pg_notify('flowrt_signal', %s)", (run_id,))
        if _woken(db, run_id):
            db.execute("NOTIFY flowrt_work")
    return seq, duplicate


def wake(db: psycopg.Connection[Any], run_id: str) -> None:
    """``_mail.wake`` for a run its owner parks, waking idle workers when it is due now."""
    if _mail.wake(db, _SQL, run_id, db_now(db)):
        db.execute("NOTIFY flowrt_work")


def parent_woken(db: psycopg.Connection[Any], parents: Sequence[str]) -> None:
    """Parents that a child's end concerns: those waiting in a process look now
    (``flowrt_signal``), and idle workers take those it made due (``flowrt_work``)."""
    for parent in parents:
        db.execute("SELECT pg_notify('flowrt_signal', %s)", (parent,))
        if _woken(db, parent):
            db.execute("NOTIFY flowrt_work")


def _woken(db: psycopg.Connection[Any], run_id: str) -> bool:
    found = db.execute(
        "SELECT 1 FROM flowrt_runs WHERE run_id = %s AND status = 'waiting' "
        "AND owner IS NULL AND retry_due IS NOT NULL",
        (run_id,),
    ).fetchall()
    return bool(found)


def notices(listener: psycopg.Connection[Any], timeout: float) -> list[str]:
    """The payloads of the notifications that came within ``timeout`` seconds (at least one,
    or none when the time ran out)."""
    got = [n.payload for n in listener.notifies(timeout=timeout, stop_after=1)]
    if got:  # and any others already there
        got += [n.payload for n in listener.notifies(timeout=0.001)]
    return got


class PostgresMail:
    """The mailbox methods of ``PostgresStore`` (see ``RunStore``)."""

    url: str
    _signal_listener: psycopg.Connection[Any] | None
    _signal_waiters: dict[str, list[anyio.Event]]
    _signal_reader: anyio.Lock | None

    if TYPE_CHECKING:  # the store's own (a pooled connection in a worker thread)

        async def _call(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T: ...

    async def _write(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        def write(db: psycopg.Connection[Any]) -> T:
            with db.transaction():
                return fn(db)

        return await self._call(write)

    async def send_signal(
        self, run_id: str, signal: str, payload: str, key: str | None = None
    ) -> tuple[int, bool]:
        """See ``RunStore.send_signal``."""
        return await self._write(lambda db: send(db, run_id, (signal, payload, key)))

    async def begin_wait(
        self, run_id: str, attempt: int, node: str, signal: str | None, seconds: float | None
    ) -> float | None:
        """See ``RunStore.begin_wait``."""

        def begin(db: psycopg.Connection[Any]) -> float | None:
            now = db_now(db)
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
        return await self._write(lambda db: _mail.take(db, _SQL, wait, token, db_now(db), records))

    async def await_child(self, run_id: str, attempt: int, node: str, child: str) -> None:
        """See ``RunStore.await_child``."""
        await self._write(lambda db: _family.await_child(db, _SQL, (run_id, attempt, node, child)))

    async def end_wait(self, run_id: str, attempt: int, node: str) -> None:
        """See ``RunStore.end_wait``."""
        await self._write(lambda db: _family.end_wait(db, _SQL, (run_id, attempt, node)))

    async def signals(self, run_id: str) -> list[StoredSignal]:
        """See ``RunStore.signals``."""
        return await self._call(lambda db: _mail.signals_of(db, _SQL, run_id))

    async def waits(self, run_id: str) -> list[OpenWait]:
        """See ``RunStore.waits``."""
        return await self._call(lambda db: _mail.waits_of(db, _SQL, run_id))

    async def wait_for_signal(self, run_id: str, timeout: float) -> None:
        """See ``RunStore.wait_for_signal``: returns when a signal to ``run_id`` was notified
        (``LISTEN flowrt_signal``), or after ``timeout`` seconds."""
        arrived = anyio.Event()
        waiters = self._signal_waiters.setdefault(run_id, [])
        waiters.append(arrived)
        try:
            with anyio.move_on_after(timeout):
                while not arrived.is_set():
                    await self._read_notices(arrived)
        finally:
            waiters.remove(arrived)
            if not waiters:
                del self._signal_waiters[run_id]

    async def _read_notices(self, arrived: anyio.Event) -> None:
        """Read the listening connection for one step, unless another task does: then wait
        for ``arrived`` (or for that task's step to end)."""
        if self._signal_reader is None:
            self._signal_reader = anyio.Lock()
        reader = self._signal_reader
        if reader.locked():
            with anyio.move_on_after(0.2):
                await arrived.wait()
            return
        async with reader:
            listener = await anyio.to_thread.run_sync(self._signals_listener)
            try:
                named = await anyio.to_thread.run_sync(notices, listener, 0.2)
            except psycopg.Error:  # the server went away: the next step listens anew
                await anyio.to_thread.run_sync(listener.close)
                raise
        for run in set(named):
            for event in self._signal_waiters.get(run, ()):
                event.set()

    def _signals_listener(self) -> psycopg.Connection[Any]:
        if self._signal_listener is None or self._signal_listener.closed:
            self._signal_listener = psycopg.connect(self.url, autocommit=True)
            self._signal_listener.execute("LISTEN flowrt_signal")
        return self._signal_listener


__all__: Sequence[str] = ["PostgresMail", "notices", "parent_woken", "send", "wake"]
