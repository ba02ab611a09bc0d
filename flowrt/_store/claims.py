"""Who may take a stored run, and what a cancel request does to it: the rules, once, for both
stores. Each store calls these inside its own transaction, on its own connection (sqlite3 or
psycopg), naming only its table and parameter marker (``Dialect``); the store's clock is the
``now`` it passes (the host's for SQLite, the database's for PostgreSQL).

- A run is *held* while its owner's lease is live and that owner is not a process of this
  place that has died (``_owners.owner_died``): such a run is ``busy``, and reported
  ``running``. Otherwise it was interrupted, and anyone may claim it.
- ``success`` (and ``failure``, unless reopened by ``resume``) has ended: nothing changes.
- Every claim counts in ``stalled`` (a node's record resets it): a run claimed
  ``max_claims`` times without progress is ended ``failure`` (``TooManyRecoveries``) by the
  next worker that would claim it, and a run with a cancel request its owner never acted on is
  ended ``cancelled``; an explicit ``resume`` still takes either.
- Cancelling: an ended run is refused (``RunEnded``), a cancelled one is left as it is, a held
  run gets a request its owner sees at its next write or heartbeat, and any other run
  (queued, parked, interrupted) is ended ``cancelled`` at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from .._errors import RunEnded, RunNotFound
from .owners import local_prefix, owner_died
from .records import RunRow, RunStatus

Decision = Literal["finished", "busy", "claimed"]
Verdict = Literal["claim", "cancel", "poison"]
CancelOutcome = Literal["cancelled", "requested"]


class _Cursor(Protocol):
    rowcount: int

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What the rules use of a store's connection (sqlite3's or psycopg's)."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """A store's table of runs, its parameter marker (``?`` or ``%s``) and what locks a row
    read in a transaction until it ends (PostgreSQL's ``FOR UPDATE``; a SQLite write
    transaction holds the whole file)."""

    table: str
    mark: str
    lock: str = ""

    def named(self, table: str) -> str:
        """The store's name of its table ``table`` (``signals``: ``flowrt_signals``)."""
        return self.table.removesuffix("runs") + table


def held(run: RunRow, now: float) -> bool:
    """Whether a live owner holds ``run`` at ``now`` (its lease is live, and its process is
    not one of this place that has died)."""
    if run.owner is None or run.lease_until is None or run.lease_until <= now:
        return False
    return not owner_died(run.owner)


def reported_status(run: RunRow, now: float) -> RunStatus:
    """The status ``load_run`` reports: ``interrupted`` for a ``running`` run nobody holds."""
    if run.status == "running" and not held(run, now):
        return "interrupted"
    return run.status


def decide(
    found: RunRow, now: float, *, reopen: bool, due: bool = False, queued: bool = False
) -> Decision:
    """What ``claim`` does with an existing run. ``due`` (``resume_due``): only a run still
    parked in a retry wait with no cancel request is taken; ``queued`` (a run waiting for its
    run limit's keys): only a run still queued; any other is left (``busy``)."""
    if found.status == "success" or (found.status == "failure" and not reopen):
        return "finished"
    if due and (found.status not in ("retrying", "waiting") or found.cancel is not None):
        return "busy"  # cancelled, or taken, since it was listed as due
    if queued and found.status != "queued":
        return "busy"  # taken by a worker, or cancelled, while it waited
    return "busy" if held(found, now) else "claimed"


def verdict(run: RunRow, max_claims: int | None) -> Verdict:
    """What a worker does with a ready run it picked: claim it, or end it (a cancel request
    nobody acted on; a poison run)."""
    if run.cancel is not None:
        return "cancel"
    if max_claims is not None and run.stalled >= max_claims:
        return "poison"
    return "claim"


def take(
    db: Connection, d: Dialect, run_id: str, owner: str, lease_until: float, *, by_hand: bool
) -> None:
    """Claim ``run_id`` for ``owner`` (running, a fresh lease, the next claim number). By
    hand (``run``/``resume``), a cancel request still pending is dropped."""
    m, dropped = d.mark, ", cancel = NULL" if by_hand else ""
    db.execute(
        f"UPDATE {d.table} SET status = 'running', owner = {m}, lease_until = {m}, "
        f"claim = claim + 1, stalled = stalled + 1, finished_at = NULL{dropped} "
        f"WHERE run_id = {m}",
        (owner, lease_until, run_id),
    )


def end(db: Connection, d: Dialect, run_id: str, status: str, error: dict[str, str]) -> None:
    """End ``run_id`` without running it: ``status`` with ``error``, owned by nobody, its
    claim number moved on (a late write of an owner presumed dead is refused)."""
    m = d.mark
    db.execute(
        f"UPDATE {d.table} SET status = {m}, error = {m}, finished_at = {m}, owner = NULL, "
        f"lease_until = NULL, retry_due = NULL, cancel = NULL, claim = claim + 1 "
        f"WHERE run_id = {m}",
        (status, json.dumps(error), datetime.now(UTC).isoformat(), run_id),
    )
    db.execute(  # no longer queued for its run limits' keys, if it was (``_store.limits``)
        f"UPDATE {d.named('run_keys')} SET queued = 0 WHERE run_id = {m} AND queued = 1",
        (run_id,),
    )


def end_unclaimed(db: Connection, d: Dialect, run: RunRow, why: Verdict, limit: int) -> None:
    """End a picked run that a worker must not execute (``verdict``)."""
    if why == "cancel":
        end(db, d, run.run_id, "cancelled", cancelled_error(run.cancel or {}))
        return
    message = (
        f"run {run.run_id!r} was claimed {run.stalled} times without any node finishing "
        f"(max_claims={limit}): it is not executed again; resume it by hand"
    )
    end(db, d, run.run_id, "failure", {"type": "TooManyRecoveries", "message": message})


def cancelled_error(request: dict[str, str]) -> dict[str, str]:
    """The stored error of a run ended by a cancel request (of type ``Cancelled``, unless the
    request names another: ``Superseded``)."""
    error = {"type": request.get("type") or "Cancelled"}
    error["message"] = request.get("reason") or "cancelled"
    if request.get("by"):
        error["by"] = request["by"]
    return error


def cancel(
    db: Connection,
    d: Dialect,
    run_id: str,
    found: RunRow | None,
    now: float,
    request: dict[str, str],
) -> CancelOutcome:
    """Cancel run ``run_id``, stored as ``found`` (locked in the caller's transaction), with
    ``request`` (``{"reason", "by"}``).

    Raises:
        RunNotFound: there is no such run.
        RunEnded: it ended ``success`` or ``failure``.
    """
    if found is None:
        raise RunNotFound(run_id)
    if found.status in ("success", "failure"):
        raise RunEnded(found.run_id, found.status)
    if found.status == "cancelled":
        return "cancelled"
    kind = {"type": request["type"]} if request.get("type") else {}
    request = {"reason": request.get("reason") or "cancelled", "by": request.get("by", ""), **kind}
    if held(found, now):
        m = d.mark
        db.execute(
            f"UPDATE {d.table} SET cancel = {m} WHERE run_id = {m}",
            (json.dumps(request), found.run_id),
        )
        return "requested"
    end(db, d, found.run_id, "cancelled", cancelled_error(request))
    return "cancelled"


def expire_dead(db: Connection, d: Dialect, now: float) -> None:
    """Expire the leases of runs whose owner is a process of this place that has died, so
    that the store's ready and due queries take them at once."""
    m = d.mark
    rows: Iterable[tuple[str, str]] = db.execute(
        f"SELECT run_id, owner FROM {d.table} WHERE owner LIKE {m} AND lease_until > {m} "
        "AND status IN ('running', 'waiting', 'retrying')",
        (local_prefix() + "%", now),
    ).fetchall()
    for run_id, owner in rows:
        if owner_died(owner):
            db.execute(
                f"UPDATE {d.table} SET lease_until = {m} WHERE run_id = {m} AND owner = {m}",
                (now, run_id, owner),
            )


__all__: Sequence[str] = [
    "CancelOutcome",
    "Dialect",
    "cancel",
    "cancelled_error",
    "decide",
    "end",
    "end_unclaimed",
    "expire_dead",
    "held",
    "reported_status",
    "take",
    "verdict",
]
