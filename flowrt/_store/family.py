"""Parent and child runs in a store (sub-workflows), rules both stores call in their own
transactions: a child's end wakes its parked parent; a cancel reaches every unfinished
descendant.

A parent waiting for a child in a worker records the wait (``waits`` with ``child`` set:
``await_child``); ``_store.mailbox.wake`` makes a parked run due when one of its open waits
has a signal to take or a child that has ended. A child's final write calls ``child_ended``
in its own transaction, and a parent's release as ``waiting`` calls ``wake``: whichever
commits second sees the other, so a child's end is never left unseen."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import mailbox as _mail
from .claims import CancelOutcome, Dialect
from .claims import cancel as cancel_one
from .records import RunRow

ENDED = ("success", "failure", "cancelled")
Load = Callable[[Any, str], RunRow | None]


def await_child(db: Any, d: Dialect, wait: tuple[str, int, str, str]) -> None:
    """Record that node (or map item) ``key`` of ``(run_id, attempt, key, child_id)`` waits
    for child run ``child_id`` (kept as it is when recorded before)."""
    m = d.mark
    db.execute(
        f"INSERT INTO {d.named('waits')} (run_id, attempt, node, child) VALUES ({m}, {m}, "
        f"{m}, {m}) ON CONFLICT (run_id, attempt, node) DO NOTHING",
        wait,
    )


def end_wait(db: Any, d: Dialect, wait: tuple[str, int, str]) -> None:
    """The wait ``(run_id, attempt, key)`` is over (its node took its child's result)."""
    m = d.mark
    db.execute(
        f"UPDATE {d.named('waits')} SET ended = 1 WHERE run_id = {m} AND attempt = {m} "
        f"AND node = {m}",
        wait,
    )


def child_ended(db: Any, d: Dialect, run: RunRow, now: float) -> str | None:
    """``run`` is ending (its row says how): its parent is made due if it is parked waiting for
    it; returns the parent's id (None: not a child, or not ended), to notify."""
    if run.parent_run_id is None or run.status not in ENDED:
        return None
    _mail.wake(db, d, run.parent_run_id, now)
    return run.parent_run_id


def cancel_family(
    db: Any, d: Dialect, found: tuple[str, RunRow | None], load: Load, now: float,
    request: dict[str, str],
) -> tuple[CancelOutcome, list[str]]:  # fmt: skip
    """Cancel run ``found`` (its id and its row, locked) and, recursively, its unfinished
    children (``"its parent run ... was cancelled"``); returns the run's outcome and the
    parents of the runs cancelled here (to notify).

    Raises:
        RunNotFound, RunEnded: see ``claims.cancel`` (for the run asked for only).
    """
    run_id, row = found
    outcome = cancel_one(db, d, run_id, row, now, request)
    woken: list[str] = []
    if outcome == "cancelled" and row is not None and row.status != "cancelled":
        row.status = "cancelled"
        parent = child_ended(db, d, row, now)
        woken += [parent] if parent else []
    m = d.mark
    children = db.execute(
        f"SELECT run_id FROM {d.table} WHERE parent_run_id = {m} "
        "AND status NOT IN ('success', 'failure', 'cancelled')",
        (run_id,),
    ).fetchall()
    for (child,) in children:
        why = {"reason": f"its parent run {run_id!r} was cancelled", "by": request.get("by", "")}
        woken += cancel_family(db, d, (child, load(db, child)), load, now, why)[1]
    return outcome, woken


__all__: Sequence[str] = ["await_child", "cancel_family", "child_ended", "end_wait"]
