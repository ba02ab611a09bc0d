"""The ``RunStore`` interface: where durable runs live, and how a run is owned.

One run is executed by one owner at a time. ``claim`` makes a process the owner of a run (or
creates the run) in one transaction and hands it a claim number; every later ``write`` of that
owner names the number, and a store refuses it (``LeaseLost``) once another owner has claimed
the run. An owner keeps its lease alive by writing (an empty write renews it): a run whose
owner's lease has expired was interrupted, and may be claimed by anyone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self, runtime_checkable

from .claims import CancelOutcome, reported_status
from .limits import Blocker
from .mailbox import Decided, OpenWait, StoredSignal
from .records import RunRow, run_row

Outcome = Literal["created", "claimed", "finished", "busy", "missing", "queued", "cancelled"]


@dataclass(slots=True)
class Claim:
    """What ``RunStore.claim`` found and did.

    ``outcome``: ``created`` (the run was new: inserted), ``claimed`` (an interrupted,
    cancelled, waiting or retrying run, or a failed one when reopening: now the caller's),
    ``finished`` (it ended: nothing was changed), ``busy`` (another owner's lease is live),
    ``missing`` (no such run and nothing to create), ``queued`` (its run limit's keys are full:
    it waits ``queued``), ``cancelled`` (a new run its limit ended at once). ``token`` is the
    claim number that the caller's writes must carry; ``run`` the stored run (with its
    current attempt's nodes) as it was before the claim, for ``claimed`` and ``finished``.
    """

    outcome: Outcome
    token: int = 0
    run: RunRow | None = None


@runtime_checkable
class RunStore(Protocol):
    """Where durable runs live (``SQLiteStore``, ``flowrt.postgres.PostgresStore``).

    Attributes:
        lease_seconds: how long an owner's lease lasts after each of its writes.
        heartbeat_seconds: how often an owner with nothing to write renews its lease.
        park_after_seconds: a node retry wait at least this long makes the run ``waiting``.
        poll_seconds: how often a run waiting in its process for a signal looks for it when
            no notification came.
    """

    lease_seconds: float
    heartbeat_seconds: float
    park_after_seconds: float
    poll_seconds: float

    async def claim(
        self,
        run_id: str,
        owner: str,
        *,
        new: RunRow | None = None,
        reopen: bool = False,
        due: bool = False,
        queued: bool = False,
    ) -> Claim:
        """Take run ``run_id`` for ``owner``, in one transaction. Absent: insert ``new`` (as
        ``running``, claim 1) or report ``missing``. ``success`` (or ``failure`` unless
        ``reopen``): ``finished``. Held by a live owner (or, with ``due``, no longer parked in
        a retry wait, or asked to cancel; with ``queued``, no longer queued): ``busy``.
        Anything else: set it ``running`` under ``owner`` with a fresh lease and the next
        claim number (see ``flowrt._store.claims``).
        A run with run-limit keys (``new.limits``) is inserted and admitted by them, and one
        that does not hold its keys yet is taken only when they are free; else ``queued`` (or
        ``cancelled`` by its strategy; see ``flowrt._store.limits``)."""

    async def write(
        self,
        run_id: str,
        token: int,
        attempt: int,
        records: Sequence[str],
        run: RunRow | None = None,
        *,
        release: bool = False,
    ) -> dict[str, str] | None:
        """In one transaction, as the owner holding claim ``token``: store these node records
        (see ``flowrt._store.records.record``) of workflow attempt ``attempt``, update the run from
        ``run`` (status, attempts, error, output, finished_at, retry_due) when given, renew the
        lease, and with ``release`` give the run up (no owner, no pending cancel request).
        Returns the run's pending cancel request (``{"reason", "by"}``), or None.

        Raises:
            LeaseLost: another owner has claimed the run since (nothing was written).
        """

    async def enqueue(self, run: RunRow) -> bool:
        """Insert ``run`` as ``queued`` (no owner) for a worker to claim, and wake idle
        workers; False, changing nothing, if a run of that id exists."""

    async def claim_ready(
        self, owner: str, workflows: Sequence[str], limit: int, *, max_claims: int | None = None
    ) -> list[Claim]:
        """Claim for ``owner``, in one transaction, up to ``limit`` of the oldest runs of
        ``workflows`` that are ready for a worker: ``queued``; ``running`` with no live owner
        (its lease expired, or its process on this host died, or it was handed back); or in a
        retry wait (``retrying``, ``waiting``) that is due, with no live owner. Each ``Claim``
        holds the run as it was before (its status, and its nodes unless it was queued).
        Concurrent claimers never get the same run (PostgreSQL: ``FOR UPDATE SKIP LOCKED``).
        A picked run with a cancel request nobody acted on is ended ``cancelled``, and one
        claimed ``max_claims`` times without progress ``failure`` (``TooManyRecoveries``),
        instead of being claimed (see ``flowrt._store.claims``)."""

    async def wait_for_work(self, timeout: float) -> None:
        """Return when a run may have been enqueued (PostgreSQL: ``LISTEN``), or after
        ``timeout`` seconds."""

    async def load_run(self, run_id: str) -> RunRow | None:
        """The stored run with its current attempt's nodes (each node's last record), or
        None. A ``running`` run whose owner's lease has expired is reported ``interrupted``."""

    async def list_runs(
        self,
        limit: int = 50,
        status: str | None = None,
        *,
        workflow: str | None = None,
        offset: int = 0,
        parent: str | None = None,
    ) -> list[RunRow]:
        """The most recent runs, newest first, without their nodes: only those of ``status``
        (``interrupted`` and ``running`` as ``load_run`` reports them), of ``workflow`` and
        children of run ``parent`` when given; ``offset`` skips that many of them first
        (paging)."""

    async def due_runs(self, now: float | None = None) -> list[RunRow]:
        """Runs waiting for a retry (``retrying`` or ``waiting``) that is due at ``now`` (wall
        clock; default: the store's clock), that no live owner holds and that nobody asked to
        cancel."""

    async def cancel(
        self, run_id: str, *, reason: str | None = None, by: str = ""
    ) -> CancelOutcome:
        """Cancel run ``run_id`` in one transaction: ``cancelled`` (it was queued, parked or
        interrupted, and is now ended ``cancelled``, or it was cancelled already) or
        ``requested`` (a live owner holds it: it sees the request at its next write).

        Raises:
            RunNotFound: no such run.
            RunEnded: it ended ``success`` or ``failure``.
        """

    async def prune(self, older_than: float) -> int:
        """Delete runs that ended (success, failure, cancelled) more than ``older_than``
        seconds ago, with their nodes; return how many."""

    async def upgrade(self) -> int:
        """Create or migrate the schema (idempotent); return its version."""

    async def send_signal(
        self, run_id: str, signal: str, payload: str, key: str | None = None
    ) -> tuple[int, bool]:
        """Keep signal ``signal`` (``payload``: checked JSON text) in run ``run_id``'s mailbox,
        in one transaction; a ``waiting`` run with a wait for it is made due and workers are
        woken. Returns its ``seq`` and whether it was a duplicate (same ``key`` and payload:
        nothing new). See ``flowrt._store.mailbox``.

        Raises:
            RunNotFound: no such run.
            RunEnded: it ended ``success`` or ``failure``.
            SignalConflict: ``key`` was used before with another payload.
        """

    async def begin_wait(
        self, run_id: str, attempt: int, node: str, signal: str | None, seconds: float | None
    ) -> float | None:
        """Wait node ``node`` (``signal`` None: a sleep) of workflow attempt ``attempt``
        starts, due in ``seconds`` (None: never) on the store's clock, unless it started
        before: the first due time holds. Returns the seconds left until it (None: never)."""

    async def await_child(self, run_id: str, attempt: int, node: str, child: str) -> None:
        """Node (or map item) ``node`` of workflow attempt ``attempt`` waits for child run
        ``child``: while the run is parked, the child's end makes it due."""

    async def end_wait(self, run_id: str, attempt: int, node: str) -> None:
        """The wait of ``node`` (a child's) is over."""

    async def take_signal(
        self,
        wait: tuple[str, int, str, str],
        token: int,
        records: tuple[Callable[[str], str], str],
    ) -> Decided | None:
        """Decide wait ``(run_id, attempt, node, signal)`` in one transaction, as the owner
        holding claim ``token``: consume the oldest unconsumed signal of its name and store
        ``records[0](payload)`` (the node's success record), or at due with none store
        ``records[1]`` (its timeout); None, changing nothing, when neither.

        Raises:
            LeaseLost: another owner has claimed the run.
        """

    async def signals(self, run_id: str) -> list[StoredSignal]:
        """Run ``run_id``'s signals in send order, with the node that consumed each."""

    async def waits(self, run_id: str) -> list[OpenWait]:
        """The nodes of run ``run_id`` waiting now, with their signal and due time."""

    async def wait_for_signal(self, run_id: str, timeout: float) -> None:
        """Return when a signal to ``run_id`` may have arrived (PostgreSQL: ``LISTEN``), or
        after ``timeout`` (SQLite: at most ``poll_seconds``)."""

    async def blockers(self, run_id: str) -> list[Blocker]:
        """Why queued run ``run_id`` waits: each of its run limits' keys that is full (its
        holders, and the runs queued before it); empty if it may start, or is not queued."""

    async def take_permit(
        self, limit: tuple[str, str], shape: tuple[float, int, float | None]
    ) -> tuple[float, bool]:
        """Reserve the next permit of rate limit ``limit`` (name, key value), in one
        transaction on the store's clock: ``shape`` is (seconds between permits, burst,
        max_wait). Returns the seconds until its turn (0: now) and True; or, when that is
        more than max_wait, the seconds and False (nothing reserved). See
        ``flowrt._store.rates``."""

    async def aclose(self) -> None:
        """Release the store's connections."""


class Closing(ABC):
    """``with`` and ``async with`` for a store: they close it (``close()``, ``aclose()``)."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's connections."""

    @abstractmethod
    async def aclose(self) -> None:
        """``close()`` from async code."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _Connection(Protocol):
    def execute(self, query: Any, params: Any) -> Iterable[tuple[Any, ...]]: ...


def listed(
    db: _Connection,
    source: tuple[str, str, str],
    now: float,
    filters: tuple[str | None, str | None, str | None],
    page: tuple[int, int],
) -> list[RunRow]:
    """``list_runs`` on a store's connection (sqlite3 or psycopg), in its worker thread.
    ``source`` is the store's (table, columns, parameter marker: ``?`` or ``%s``), ``filters``
    (status, workflow, parent run), ``page`` (limit, offset); ``now`` is the store's clock.
    ``running`` and ``interrupted`` are told apart here, run by run
    (``_claims.reported_status``: the lease, and whether the owner's process on this host is
    alive), then paged."""
    status, workflow, parent = filters
    live = status in ("running", "interrupted")  # both stored as running: told apart here
    wanted = ("running" if live else status, workflow, parent)
    query, params = _listing(source, wanted, paged=not live)
    rows = db.execute(query, params if live else (*params, *page))
    runs = [run_row(row) for row in rows]
    for run in runs:
        run.status = reported_status(run, now)
    if not live:
        return runs
    limit, offset = page
    return [run for run in runs if run.status == status][offset : offset + limit]


def _listing(
    source: tuple[str, str, str], wanted: tuple[str | None, ...], *, paged: bool
) -> tuple[str, list[object]]:
    """The query of ``list_runs`` (with ``LIMIT``/``OFFSET`` markers when ``paged``) and its
    filters' parameters (``wanted``: status, workflow, parent run; None: any)."""
    table, columns, mark = source
    where: list[str] = []
    params: list[object] = []
    for column, value in zip(("status", "workflow", "parent_run_id"), wanted, strict=True):
        if value is not None:
            where.append(f"{column} = {mark}")
            params.append(value)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    paging = f" LIMIT {mark} OFFSET {mark}" if paged else ""
    query = f"SELECT {columns} FROM {table} {clause}ORDER BY started_at DESC, run_id DESC{paging}"
    return query, params


__all__: Sequence[str] = ["Claim", "Closing", "RunStore", "listed"]
