"""A stored run's mailbox and its waits: the rules, once, for both stores. Each store calls
these inside its own transaction, on its own connection, naming its tables through its
``Dialect``; ``now`` is the store's clock (the host's for SQLite, the database's for
PostgreSQL).

- A signal is kept in send order (``seq`` from 1) whatever the run is doing, unless the run
  ended ``success`` or ``failure`` (``RunEnded``) or does not exist (``RunNotFound``); a keyed
  send whose key was used before is a no-op with an equal payload, ``SignalConflict`` with
  another.
- A wait (or sleep) node's due time is fixed when it first starts, on the store's clock
  (``begin``): a restart, a resume or another worker finds the same one.
- ``take`` decides a wait once, in one transaction with the owner's claim checked: the oldest
  unconsumed signal of its name is consumed by the node and the node's success is recorded
  with it; or, at due with none, its ``SignalTimeout`` failure is recorded.
- ``wake``: a ``waiting`` run with an open wait whose signal is in its mailbox is due at once
  (a sender calls it, and so does an owner releasing a run it parked: a signal sent between
  the owner's last look and its release is never left unseen).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._errors import LeaseLost, RunEnded, RunNotFound, SignalConflict
from .claims import Connection, Dialect


@dataclass(frozen=True, slots=True)
class StoredSignal:
    """One signal in a stored run's mailbox; ``consumed_by`` names the wait node that took it."""

    run_id: str
    seq: int
    name: str
    payload: Any
    key: str | None
    consumed_by: str | None
    sent_at: str


@dataclass(frozen=True, slots=True)
class OpenWait:
    """A node of a stored run waiting now: for ``signal`` (None: a sleep), until ``due``
    (epoch seconds on the store's clock; None: no timeout)."""

    node: str
    signal: str | None
    due: float | None


@dataclass(frozen=True, slots=True)
class Decided:
    """How ``take`` decided a wait: the payload (JSON text) of the signal consumed, or None
    when the wait timed out."""

    payload: str | None


def send(
    db: Connection, d: Dialect, run_id: str, signal: tuple[str, str, str | None], now: float
) -> tuple[int, bool]:
    """Keep ``signal`` (name, payload as JSON text, key) for run ``run_id``; return its
    ``seq`` and whether it was a duplicate.

    Raises:
        RunNotFound: no such run.
        RunEnded: it ended ``success`` or ``failure``.
        SignalConflict: the key was used before with another payload.
    """
    name, payload, key = signal
    m, signals = d.mark, d.named("signals")
    found = db.execute(
        f"SELECT status FROM {d.table} WHERE run_id = {m}{d.lock}", (run_id,)
    ).fetchall()
    if not found:
        raise RunNotFound(run_id)
    if found[0][0] in ("success", "failure"):
        raise RunEnded(run_id, found[0][0])
    if key is not None:
        kept = db.execute(
            f"SELECT seq, payload FROM {signals} WHERE run_id = {m} AND name = {m} AND key = {m}",
            (run_id, name, key),
        ).fetchall()
        if kept:
            if json.loads(kept[0][1]) != json.loads(payload):
                raise SignalConflict(run_id, name, key)
            return int(kept[0][0]), True
    last = db.execute(f"SELECT MAX(seq) FROM {signals} WHERE run_id = {m}", (run_id,)).fetchall()
    seq = int(last[0][0] or 0) + 1
    db.execute(
        f"INSERT INTO {signals} (run_id, seq, name, payload, key, sent_at) "
        f"VALUES ({m}, {m}, {m}, {m}, {m}, {m})",
        (run_id, seq, name, payload, key, datetime.now(UTC).isoformat()),
    )
    wake(db, d, run_id, now)
    return seq, False


def wake(db: Connection, d: Dialect, run_id: str, now: float) -> bool:
    """Make run ``run_id`` due at ``now`` if it is ``waiting`` (parked) with an open wait
    whose signal is in its mailbox, unconsumed, or whose child run has ended; whether it
    did."""
    m, runs, waits, signals = d.mark, d.table, d.named("waits"), d.named("signals")
    woken = db.execute(
        f"UPDATE {runs} SET retry_due = {m} WHERE run_id = {m} AND status = 'waiting' "
        f"AND (EXISTS (SELECT 1 FROM {waits} AS w JOIN {signals} AS s "
        "ON s.run_id = w.run_id AND s.name = w.signal AND s.consumed_by IS NULL "
        f"WHERE w.run_id = {runs}.run_id AND w.attempt = {runs}.attempts AND w.ended = 0) "
        f"OR EXISTS (SELECT 1 FROM {waits} AS w JOIN {runs} AS c ON c.run_id = w.child "
        f"WHERE w.run_id = {runs}.run_id AND w.attempt = {runs}.attempts AND w.ended = 0 "
        "AND c.status IN ('success', 'failure', 'cancelled')))",
        (now, run_id),
    )
    return bool(woken.rowcount)


def begin(
    db: Connection,
    d: Dialect,
    wait: tuple[str, int, str, str | None],
    seconds: float | None,
    now: float,
) -> float | None:
    """Wait ``(run_id, attempt, node, signal)`` (signal None: a sleep) starts, due
    ``seconds`` from ``now`` (None: never); return its due time, the one recorded when it
    first started."""
    m, waits = d.mark, d.named("waits")
    due = None if seconds is None else now + seconds
    db.execute(
        f"INSERT INTO {waits} (run_id, attempt, node, signal, due) VALUES ({m}, {m}, {m}, {m}, "
        f"{m}) ON CONFLICT (run_id, attempt, node) DO NOTHING",
        (*wait, due),
    )
    run_id, attempt, node, _ = wait
    found = db.execute(
        f"SELECT due FROM {waits} WHERE run_id = {m} AND attempt = {m} AND node = {m}",
        (run_id, attempt, node),
    ).fetchall()
    stored = found[0][0]
    return None if stored is None else float(stored)


def take(
    db: Connection,
    d: Dialect,
    wait: tuple[str, int, str, str],
    token: int,
    now: float,
    records: tuple[Callable[[str], str], str],
) -> Decided | None:
    """Decide wait ``(run_id, attempt, node, signal)`` as the owner holding claim ``token``:
    consume the oldest unconsumed signal of its name and record ``records[0](payload)`` (the
    node's success); or, at its due time with none, record ``records[1]`` (its timeout);
    else change nothing and return None. A wait decided before (a crash came before the
    node's end was written) is decided the same way again, its record written anew.

    Raises:
        LeaseLost: another owner has claimed the run (nothing was changed).
    """
    run_id, attempt, node, signal = wait
    m = d.mark
    _owned(db, d, run_id, token)
    key = (run_id, attempt, node)
    found = db.execute(
        f"SELECT due, ended, seq FROM {d.named('waits')} "
        f"WHERE run_id = {m} AND attempt = {m} AND node = {m}",
        key,
    ).fetchall()
    due, ended, seq = found[0] if found else (None, 0, None)
    oldest = _pick(db, d, (run_id, signal), ended, seq)
    if oldest:
        seq, payload = oldest[0]
        db.execute(
            f"UPDATE {d.named('signals')} SET consumed_by = {m} WHERE run_id = {m} AND seq = {m}",
            (node, run_id, seq),
        )
        _record(db, d, key, records[0](payload), seq)
        return Decided(payload)
    if ended or (due is not None and now >= float(due)):
        _record(db, d, key, records[1], None)
        return Decided(None)
    return None


def _owned(db: Connection, d: Dialect, run_id: str, token: int) -> None:
    """Lock the run's row and check that claim ``token`` still holds it.

    Raises:
        LeaseLost: another owner has claimed the run.
    """
    claim = db.execute(f"SELECT claim FROM {d.table} WHERE run_id = {d.mark}{d.lock}", (run_id,))
    if [tuple(row) for row in claim.fetchall()] != [(token,)]:
        raise LeaseLost(run_id)


def _pick(
    db: Connection, d: Dialect, wanted: tuple[str, str], ended: int, seq: int | None
) -> list[Any]:
    """The signal a wait takes: the one it took before when it has ended (none when it timed
    out), else the oldest unconsumed signal of its name (none yet: an empty list)."""
    m, signals = d.mark, d.named("signals")
    run_id, signal = wanted
    if ended:
        pick = f"SELECT seq, payload FROM {signals} WHERE run_id = {m} AND seq = {m}"
        return db.execute(pick, (run_id, seq)).fetchall() if seq is not None else []
    rows: list[Any] = db.execute(
        f"SELECT seq, payload FROM {signals} WHERE run_id = {m} AND name = {m} "
        "AND consumed_by IS NULL ORDER BY seq LIMIT 1",
        (run_id, signal),
    ).fetchall()
    return rows


def _record(
    db: Connection, d: Dialect, wait: tuple[str, int, str], record: str, seq: int | None
) -> None:
    """Record the wait's outcome (a node record of its attempt) and end the wait, naming the
    signal it consumed (``seq``; None: it timed out)."""
    m = d.mark
    run_id, attempt, node = wait
    db.execute(
        f"INSERT INTO {d.named('node_batches')} (run_id, attempt, records) VALUES ({m}, {m}, {m})",
        (run_id, attempt, f"[{record}]"),
    )
    db.execute(
        f"UPDATE {d.named('waits')} SET ended = 1, seq = {m} WHERE run_id = {m} "
        f"AND attempt = {m} AND node = {m}",
        (seq, run_id, attempt, node),
    )
    db.execute(f"UPDATE {d.table} SET stalled = 0 WHERE run_id = {m}", (run_id,))


def signals_of(db: Connection, d: Dialect, run_id: str) -> list[StoredSignal]:
    """Run ``run_id``'s mailbox, in send order."""
    rows = db.execute(
        f"SELECT run_id, seq, name, payload, key, consumed_by, sent_at FROM {d.named('signals')} "
        f"WHERE run_id = {d.mark} ORDER BY seq",
        (run_id,),
    ).fetchall()
    return [StoredSignal(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6]) for r in rows]


def waits_of(db: Connection, d: Dialect, run_id: str) -> list[OpenWait]:
    """The nodes of run ``run_id``'s current attempt that wait now (their last record is
    ``waiting``), with what for and until when."""
    m, runs = d.mark, d.table
    rows = db.execute(
        f"SELECT w.node, w.signal, w.due FROM {d.named('waits')} AS w "
        f"JOIN {runs} AS r ON r.run_id = w.run_id AND r.attempts = w.attempt "
        f"JOIN {d.named('nodes')} AS n ON n.run_id = w.run_id AND n.name = w.node "
        f"WHERE w.run_id = {m} AND w.ended = 0 AND w.child IS NULL AND n.status = 'waiting' "
        "ORDER BY w.node",
        (run_id,),
    ).fetchall()
    return [OpenWait(r[0], r[1], None if r[2] is None else float(r[2])) for r in rows]


__all__: Sequence[str] = [
    "Decided",
    "OpenWait",
    "StoredSignal",
    "begin",
    "send",
    "signals_of",
    "take",
    "waits_of",
    "wake",
]
