"""Run limits in a store: which runs hold a key, whether a run may take its keys, and what a new
run does to a full key. The rules, once, for both stores, called inside each store's own
transaction (see ``claims`` for the connection and ``Dialect``).

- A run *holds* its keys while it is ``running``, ``waiting`` or ``retrying``: from its first
  claim until it ends, through parked waits, retries and interruptions (a dead owner's run
  keeps holding until it is resumed and ends). Holding is read from the stored runs, never
  counted apart, so nothing can leak.
- A queued run may take its keys when, for each, the runs holding it and the runs of it
  queued before it (submit order: ``started_at``, then ``run_id``) number fewer than
  ``max_runs``: within a key, runs start in submit order; other keys are not held up.
- A new run of a full key (holders and runs queued before it), by the key's strategy:
  ``queue`` stays queued; ``cancel_newest`` is ended ``cancelled`` at once (``LimitReached``,
  naming the holders); ``cancel_in_progress`` stays queued and the oldest runs of the key are
  cancelled to make room (``Superseded``, naming it): a queued or unheld one at once, a held one
  by a cancel request its owner acts on at its next write, so the new run starts only after the
  old one's final write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .claims import Dialect, end
from .family import Load, cancel_family
from .records import RunKey, RunRow, run_row

HOLDS = ("running", "waiting", "retrying")  # the statuses of a run that holds its keys
HOLDING = "('running', 'waiting', 'retrying')"
Admission = Literal["free", "queued", "cancelled"]
# Tries to lock ``keys`` for the rest of the transaction (PostgreSQL: advisory locks), without
# waiting; returns those it locked.
Locker = Callable[[Any, Sequence[str]], set[str]]


@dataclass(frozen=True, slots=True)
class Blocker:
    """Why a queued run waits: its key ``key`` allows ``max_runs``, held by ``holders`` (run
    ids, oldest first), with ``ahead`` (run ids) queued before it."""

    key: str
    max_runs: int
    holders: tuple[str, ...]
    ahead: tuple[str, ...]

    def describe(self) -> str:
        """One line for people: ``waits for key ... (max_runs=1): held by 'a'; queued
        before it: 'b'``."""
        parts = [f"held by {', '.join(map(repr, self.holders))}"] if self.holders else []
        if self.ahead:
            parts.append(f"queued before it: {', '.join(map(repr, self.ahead))}")
        return f"waits for key {self.key!r} (max_runs={self.max_runs}): {'; '.join(parts)}"


def save_keys(db: Any, d: Dialect, run: RunRow) -> None:
    """Keep new run ``run``'s keys (``run.limits``), marked queued (``queued = 1`` until the
    run is first claimed or ends: ``left_queue``), with its submit time."""
    m = d.mark
    for limit in run.limits:
        db.execute(
            f"INSERT INTO {d.named('run_keys')} (run_id, key, max_runs, strategy, started_at) "
            f"VALUES ({m}, {m}, {m}, {m}, {m})",
            (run.run_id, limit.key, limit.max_runs, limit.strategy, run.started_at),
        )


def taken(db: Any, d: Dialect, runs: Sequence[RunRow | None]) -> None:
    """``runs`` (as they were) were just claimed: those that were queued with keys left the
    queue."""
    left_queue(db, d, [r.run_id for r in runs if r and r.status == "queued" and r.limits])


def left_queue(db: Any, d: Dialect, run_ids: Sequence[str]) -> None:
    """Runs ``run_ids`` are no longer queued (claimed, or ended): their keys' ``queued``
    marks go (they index the queue that ``blocked_runs`` ranks; the rules read the runs)."""
    if run_ids:
        m = d.mark
        db.execute(
            f"UPDATE {d.named('run_keys')} SET queued = 0 WHERE queued = 1 "
            f"AND run_id IN ({', '.join([m] * len(run_ids))})",
            tuple(run_ids),
        )


def keys_of(db: Any, d: Dialect, run_id: str) -> tuple[RunKey, ...]:
    """Run ``run_id``'s keys, as it was inserted with them."""
    rows = db.execute(
        f"SELECT key, max_runs, strategy FROM {d.named('run_keys')} WHERE run_id = {d.mark} "
        "ORDER BY key",
        (run_id,),
    ).fetchall()
    return tuple(RunKey(key, max_runs, strategy) for key, max_runs, strategy in rows)


def blockers(db: Any, d: Dialect, run: RunRow) -> list[Blocker]:
    """The keys that keep queued run ``run`` from starting now (none: it may)."""
    lines, found = _lines(db, d, [limit.key for limit in run.limits]), []
    for limit in run.limits:
        ahead = _ahead(lines.get(limit.key, []), run)
        if len(ahead) >= limit.max_runs:
            holders = tuple(rid for rid, status in ahead if status != "queued")
            queued = tuple(rid for rid, status in ahead if status == "queued")
            found.append(Blocker(limit.key, limit.max_runs, holders, queued))
    return found


def queued_blockers(db: Any, d: Dialect, run_id: str) -> list[Blocker]:
    """``RunStore.blockers``: what keeps stored run ``run_id`` queued (none if it is not)."""
    found = db.execute(
        f"SELECT started_at, status FROM {d.table} WHERE run_id = {d.mark}", (run_id,)
    ).fetchone()
    if found is None or found[1] != "queued":
        return []
    run = RunRow(run_id, "", "", "queued", found[0])
    run.limits = keys_of(db, d, run_id)
    return blockers(db, d, run)


def startable(db: Any, d: Dialect, runs: Sequence[RunRow], lock: Locker | None) -> set[str]:
    """Of ``runs`` (picked to be claimed, in claim order, with their ``limits``), the ids of
    those that may be: a run that holds its keys already always; any other only if each of
    its keys is locked here (``lock`` tries them; None: they are, or the store is serial) and
    has room for it, each run admitted taking its keys before the next is looked at. Two
    statements for the whole batch, whatever its size; none when no run waits for keys."""
    waiting = [run for run in runs if run.status not in HOLDS and run.limits]
    wanted = sorted({limit.key for run in waiting for limit in run.limits})
    locked = set(wanted) if lock is None or not wanted else lock(db, wanted)
    lines = _lines(db, d, wanted)
    allowed = {run.run_id for run in runs if run.status in HOLDS or not run.limits}
    for run in waiting:
        if all(
            limit.key in locked and len(_ahead(lines.get(limit.key, []), run)) < limit.max_runs
            for limit in run.limits
        ):
            allowed.add(run.run_id)
            for limit in run.limits:  # it holds them now: the next runs of the batch see it
                line = [entry for entry in lines.get(limit.key, []) if entry[0] != run.run_id]
                lines[limit.key] = [*line, (run.run_id, "running", run.started_at)]
    return allowed


def _lines(db: Any, d: Dialect, keys: Sequence[str]) -> dict[str, list[tuple[str, str, str]]]:
    """Each of ``keys``' runs that hold it or are queued for it: ``(run_id, status,
    started_at)``, oldest first."""
    if not keys:
        return {}
    m = d.mark
    found: dict[str, list[tuple[str, str, str]]] = {}
    for key, run_id, status, started in db.execute(
        f"SELECT k.key, r.run_id, r.status, r.started_at FROM {d.named('run_keys')} AS k "
        f"JOIN {d.table} AS r ON r.run_id = k.run_id WHERE k.key IN ({', '.join([m] * len(keys))}) "
        f"AND r.status IN ('queued', 'running', 'waiting', 'retrying') "
        "ORDER BY r.started_at, r.run_id",
        tuple(keys),
    ).fetchall():
        found.setdefault(key, []).append((run_id, status, started))
    return found


def _ahead(line: Sequence[tuple[str, str, str]], run: RunRow) -> list[tuple[str, str]]:
    """The runs of a key that come before ``run`` (``(run_id, status)``, oldest first): its
    holders, and the runs queued for it earlier (``started_at``, then ``run_id``)."""
    mine = (run.started_at, run.run_id)
    return [
        (run_id, status)
        for run_id, status, started in line
        if run_id != run.run_id
        and (status in HOLDS or (status == "queued" and (started, run_id) < mine))
    ]


def admit(db: Any, d: Dialect, run: RunRow, load: Load, now: float) -> tuple[Admission, list[str]]:
    """Apply the strategies of new run ``run`` (inserted ``queued`` with its keys saved, its
    keys locked): ``free`` (it may start now), ``queued`` or ``cancelled``; and the parents of
    runs cancelled here (to notify)."""
    woken: list[str] = []
    for limit in run.limits:
        ahead = _ahead(_lines(db, d, [limit.key]).get(limit.key, []), run)  # read anew each
        extra = len(ahead) - limit.max_runs + 1
        if extra <= 0:
            continue
        if limit.strategy == "cancel_newest":
            names = ", ".join(repr(rid) for rid, _ in ahead)
            why = f"run limit {limit.key!r} (max_runs={limit.max_runs}) is held by {names}"
            end(db, d, run.run_id, "cancelled", {"type": "LimitReached", "message": why})
            return "cancelled", woken
        if limit.strategy == "cancel_in_progress":
            for rid, _ in ahead[:extra]:
                woken += _supersede(db, d, rid, run.run_id, load, now)
    return ("queued" if blockers(db, d, run) else "free"), woken


def _supersede(db: Any, d: Dialect, old: str, new: str, load: Load, now: float) -> list[str]:
    """Cancel run ``old`` for new run ``new`` (``Superseded``)."""
    request = {"reason": f"superseded by run {new!r}", "by": f"run {new}", "type": "Superseded"}
    return cancel_family(db, d, (old, load(db, old)), load, now, request)[1]


def blocked_runs(d: Dialect) -> str:
    """SQL: common table expressions ending in ``blocked (run_id)``, the queued runs that
    their keys keep waiting: a run's place among its key's queued runs (submit order) plus
    the key's holders reaching its ``max_runs``. Read once per claim, in time proportional to
    the runs holding keys and the runs queued with keys (an index holds only those)."""
    keys, runs = d.named("run_keys"), d.table
    return (
        f"held AS (SELECT o.key AS key, count(*) AS n FROM {runs} AS h "
        f"JOIN {keys} AS o ON o.run_id = h.run_id WHERE h.status IN {HOLDING} GROUP BY o.key), "
        f"places AS (SELECT run_id, key, max_runs, row_number() OVER (PARTITION BY key "
        f"ORDER BY started_at, run_id) - 1 AS place FROM {keys} WHERE queued = 1), "
        "blocked AS (SELECT p.run_id AS run_id FROM places AS p LEFT JOIN held "
        "ON held.key = p.key WHERE p.place + coalesce(held.n, 0) >= p.max_runs)"
    )


def ready_filter(d: Dialect) -> str:
    """SQL: the run of the enclosing query (``{table}``, with ``blocked_runs`` in its
    ``WITH``) is not a queued run that its keys keep waiting. It is checked again with its
    keys locked, before it is claimed (``startable``)."""
    runs = d.table
    return f"({runs}.status <> 'queued' OR {runs}.run_id NOT IN (SELECT run_id FROM blocked))"


def keys_from(value: Any) -> tuple[RunKey, ...]:
    """A run's keys from the JSON array of ``[key, max_runs, strategy]`` that a store's pick
    returns with it (``keys_column``: text on SQLite, decoded on PostgreSQL; None: none)."""
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(RunKey(key, max_runs, strategy) for key, max_runs, strategy in value or ())


def keyed(row: Sequence[Any]) -> RunRow:
    """A run a store picked, from its columns followed by its keys (``keys_column``)."""
    run = run_row(tuple(row[:-1]))
    run.limits = keys_from(row[-1])
    return run


def keys_column(d: Dialect, aggregate: str, array: str) -> str:
    """SQL: the keys of the run of the enclosing query (``{table}``) as a JSON array of
    ``[key, max_runs, strategy]``, with the store's JSON functions (``aggregate``: SQLite's
    ``json_group_array``, PostgreSQL's ``json_agg``; ``array``: ``json_array``,
    ``json_build_array``)."""
    return (
        f"(SELECT {aggregate}({array}(k.key, k.max_runs, k.strategy)) "
        f"FROM {d.named('run_keys')} AS k WHERE k.run_id = {d.table}.run_id)"
    )


__all__: Sequence[str] = [
    "HOLDING",
    "HOLDS",
    "Admission",
    "Blocker",
    "Locker",
    "admit",
    "blocked_runs",
    "blockers",
    "keyed",
    "keys_column",
    "keys_from",
    "keys_of",
    "left_queue",
    "queued_blockers",
    "ready_filter",
    "save_keys",
    "startable",
    "taken",
]
