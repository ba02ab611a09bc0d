"""``Worker``: executes the runs of a store, as many at once as it has slots. Any number of
workers (processes, hosts) may serve one store: a run is claimed by exactly one of them
(``RunStore.claim_next``), held under a lease its writer renews, and taken over by another
worker once that lease has expired (its owner died). A worker whose run was taken over has its
writes refused and drops the run."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import anyio

from ._catalog import chooser
from ._engine.run import execute_claimed
from ._errors import LeaseLost, RunCancelled, RunParked
from ._store.outage import Outage
from ._store.owners import owner_id
from ._store.protocol import Claim, RunStore
from ._workflow import Workflow

_log = logging.getLogger("flowrt")


class Worker:
    """Claims and executes the runs of ``workflows`` kept in ``store``: submitted runs
    (``wf.submit``), runs whose owner's lease expired, and retry waits that have come due.

    Args:
        store: the store (``PostgresStore`` for several hosts, ``SQLiteStore`` for the
            processes of one host).
        workflows: the workflows this worker executes, matched to runs by name.
        concurrency: how many runs it executes at once.
        heartbeat_seconds: when given, replaces the store's (it applies to every run
            executed against that store object; so do the next two).
        lease_seconds: when given, replaces the store's.
        park_after_seconds: when given, replaces the store's.
        poll_seconds: how long an idle worker waits for a notification (PostgreSQL) before it
            looks for ready runs again; SQLite cannot notify, so its workers poll at this pace.
        timeout: the deadline (seconds) of runs stored without one (``submit(timeout=)``
            stores a run's own, which wins).
        max_claims: a run claimed this many times without any node finishing in between (it
            keeps killing the workers that take it) is not executed again: the next claim ends
            it ``failure`` with error type ``TooManyRecoveries``. None: no limit.

    Raises:
        ValueError: ``concurrency`` or ``max_claims`` is below 1.
    """

    def __init__(
        self,
        store: RunStore,
        workflows: Iterable[Workflow],
        *,
        concurrency: int = 100,
        heartbeat_seconds: float | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float = 1.0,
        park_after_seconds: float | None = None,
        max_claims: int | None = 20,
        timeout: float | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"Worker: concurrency must be at least 1, not {concurrency}")
        if max_claims is not None and max_claims < 1:
            raise ValueError(f"Worker: max_claims must be at least 1 or None, not {max_claims}")
        self.max_claims = max_claims
        self.timeout = timeout
        self.store = store
        self.workflows = list(workflows)
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        if heartbeat_seconds is not None:
            store.heartbeat_seconds = heartbeat_seconds
        if lease_seconds is not None:
            store.lease_seconds = lease_seconds
        if park_after_seconds is not None:
            store.park_after_seconds = park_after_seconds
        self._choose = chooser(store, self.workflows)
        self._names = sorted({wf.name for wf in self.workflows})
        self.outage = Outage("worker")
        self.executed = 0  # runs this worker has finished executing (ended, or dropped)
        self._ended: anyio.Event  # set when one of its runs stops executing (in _claiming)

    async def serve(self) -> None:
        """Execute ready runs until cancelled. A cancellation stops the runs in progress and
        hands them back before it propagates: each is stored as it stood, ``interrupted``,
        and the next worker that looks continues it (its stored successes are kept)."""
        await self._claiming(idle_stops=False)

    async def drain(self) -> int:
        """Execute ready runs until none is left (at most ``concurrency`` at once); return
        how many were executed. For a cron job, or a test."""
        done = self.executed
        await self._claiming(idle_stops=True)
        return self.executed - done

    @property
    def health(self) -> str:
        """``"ok"``, or ``"down: <why>"`` while it cannot reach its store (it keeps trying,
        with backoff, and logs one line when the outage starts and one when it ends)."""
        return "ok" if self.outage.error is None else f"down: {self.outage.error}"

    async def _claiming(self, *, idle_stops: bool) -> None:
        slots = anyio.Semaphore(self.concurrency)
        self._ended = anyio.Event()
        async with anyio.create_task_group() as tg:
            while True:
                await slots.acquire()  # one free slot, and as many more as are free now
                free = 1 + slots.value
                for _ in range(free - 1):
                    await slots.acquire()
                owner = owner_id()
                claims = await self._claim(owner, free, idle_stops)
                for claim in claims:
                    tg.start_soon(self._execute, claim, owner, slots)
                for _ in range(free - len(claims)):
                    slots.release()
                if len(claims) == free:
                    continue
                if idle_stops and not self.outage.down:
                    if slots.value == self.concurrency:
                        return  # nothing ready, nothing running
                    await self._ended.wait()  # a run's end may free its keys: look again
                    self._ended = anyio.Event()
                    continue
                await self._wait_for_work()

    async def _claim(self, owner: str, free: int, idle_stops: bool) -> list[Claim]:
        """Claim up to ``free`` ready runs; none while the store cannot be reached (a drain
        raises then: a cron job must fail).

        Raises:
            Exception: the store's error, when draining.
        """
        try:
            claims = await self.store.claim_ready(
                owner, self._names, free, max_claims=self.max_claims
            )
        except Exception as exc:
            if idle_stops:
                raise
            await anyio.sleep(self.outage.failed(exc))
            return []
        self.outage.answered()
        return claims

    async def _wait_for_work(self) -> None:
        """Wait for a notification or ``poll_seconds``; after a backoff when the store fails."""
        try:
            await self.store.wait_for_work(self.poll_seconds)
        except Exception as exc:
            await anyio.sleep(self.outage.failed(exc))

    async def _execute(self, claim: Claim, owner: str, slots: anyio.Semaphore) -> None:
        assert claim.run is not None
        run_id = claim.run.run_id
        try:
            plan, env = self._choose(claim.run)
            await execute_claimed(plan, env, claim, owner=owner, timeout=self.timeout)
        except RunParked:  # every running node waits for a due retry: the slot is free
            _log.debug("flowrt: run %s parked until its retry is due", run_id)
        except RunCancelled as cancelled:
            _log.info("flowrt: %s", cancelled)
        except LeaseLost:
            _log.warning("flowrt: run %s was taken over by another owner; dropped", run_id)
        except Exception:  # its lease expires and another worker takes it over
            _log.error("flowrt: worker failed executing run %s", run_id, exc_info=True)
        finally:
            self.executed += 1
            slots.release()
            self._ended.set()
