"""Rate limits in a store: GCRA (the generic cell rate algorithm), one row per limit name and
key holding its theoretical arrival time (``tat``) on the store's clock. The rule, once, for
both stores, called inside each store's own transaction (the row locked: PostgreSQL's ``FOR
UPDATE``; SQLite's write transaction holds the file).

A permit is reserved in turn: with ``interval = per_seconds / limit`` and ``tolerance = burst *
interval``, the next permit's turn is ``max(now, tat - tolerance)`` and taking it moves ``tat`` to
``max(tat, now) + interval``. So ``burst + 1`` permits may be used at once, then one per interval,
and no window of ``per_seconds`` holds more than ``limit + burst`` turns. A turn further away
than ``max_wait`` reserves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .claims import Dialect


def turn(tat: float, now: float, interval: float, burst: int) -> tuple[float, float]:
    """Pure GCRA: the next permit's turn after ``tat`` at ``now``, and the ``tat`` once it is
    taken."""
    return max(now, tat - burst * interval), max(tat, now) + interval


def take_permit(
    db: Any, d: Dialect, limit: tuple[str, str], shape: tuple[float, int, float | None],
    now: float,
) -> tuple[float, bool]:  # fmt: skip
    """Reserve the next permit of ``limit`` (name, key) with ``shape`` (interval, burst,
    max_wait): the seconds from ``now`` until its turn, and whether it was reserved (not when
    the turn is further than max_wait away)."""
    (name, key), (interval, burst, max_wait), m = limit, shape, d.mark
    table = d.named("rate_limits")
    db.execute(
        f"INSERT INTO {table} (name, key, tat) VALUES ({m}, {m}, {m}) "
        "ON CONFLICT (name, key) DO NOTHING",
        (name, key, now),
    )
    found = db.execute(
        f"SELECT tat FROM {table} WHERE name = {m} AND key = {m}{d.lock}", (name, key)
    ).fetchone()
    at, tat = turn(float(found[0]), now, interval, burst)
    if max_wait is not None and at - now > max_wait:
        return at - now, False
    db.execute(f"UPDATE {table} SET tat = {m} WHERE name = {m} AND key = {m}", (tat, name, key))
    return at - now, True


__all__: Sequence[str] = ["take_permit", "turn"]
