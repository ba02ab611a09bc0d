"""One durable run's life in its store: claimed (or created) before its first node starts,
each node recorded as it finishes (group commit), its lease renewed, and its final status
written with its last records in one transaction. A cancel request (``wf.cancel``) comes back
from any write, a heartbeat included: it cancels the run's scope, and the run is stored
``cancelled`` with the request's reason.

Nothing queued is ever dropped: a batch leaves the queue only once the store has committed it
(a write interrupted by cancellation keeps its batch for the next one), and the run's last
write happens after every record queued before it. A write refused because another owner
took the run over (``LeaseLost``) stops the run: it cancels the run's scope and the run
raises ``LeaseLost``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import anyio

from .._errors import InputError, LeaseLost, OutputError, RunCancelled, cancelled_from
from .._models import RunResult
from .._store.claims import cancelled_error
from .._store.outage import Outage
from .._store.owners import describe, owner_id
from .._store.protocol import Claim, RunStore
from .._store.records import RunRow, node_text, to_json, trace_json, unencodable
from .observe import Observer, Wait
from .states import NodeState

COMMIT_DELAY = 0.01  # seconds a finished node may wait before its batch is written
HANDS_OVER: ContextVar[bool] = ContextVar("flowrt_hands_over", default=False)
"""Set (by ``flowrt run``, which stops on a signal): a run cancelled in this context is handed
over as a worker's run is (stored ``interrupted``), not stored ``cancelled``."""
_log = logging.getLogger("flowrt")


def input_json(input: Any) -> str:
    """The run input as strict JSON text.

    Raises:
        InputError: it is not JSON (an object, NaN, nested too deep): a durable run must store
            it.
    """
    try:
        return to_json(input)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError(
            f"the run input cannot be stored as JSON: {unencodable(exc)}", field="input"
        ) from None


class DurableRun(Observer):
    """A run's writes to its store, as the run's observer: the claim, the queue of node records
    and run-row changes, the writer task (group commit with ``COMMIT_DELAY``, heartbeats), and
    the run's ends. It records; what the run does (parking it) is the scheduler's to decide."""

    __slots__ = (
        "attempt",
        "cancel_request",
        "handover",
        "lock",
        "long",
        "lost",
        "outage",
        "owner",
        "pending",
        "queued",
        "row",
        "run",
        "scope",
        "signalled",
        "stopping",
        "store",
        "token",
    )

    def __init__(self, store: RunStore, row: RunRow) -> None:
        self.store = store
        self.row = row  # the run as this owner writes it
        self.owner = owner_id()
        self.token = 0
        self.attempt = row.attempts
        self.pending: list[str] = []
        self.run: RunRow | None = None  # a run-row change to write with the next batch
        self.lock = anyio.Lock()
        self.queued = anyio.Event()
        self.signalled = False
        self.long: dict[str, float | None] = {}  # nodes in a long wait, and when each is due
        self.scope = anyio.CancelScope()  # the run's: cancelled when its lease is lost
        self.lost = False
        self.stopping = anyio.Event()  # the run has ended: the writer returns
        self.handover = HANDS_OVER.get()  # cancelled, it is left for another (a worker's run)
        self.cancel_request: dict[str, str] | None = None  # someone asked to cancel the run
        self.outage: Outage | None = None  # made when a write fails (the store is down)

    async def open(
        self, *, create: bool, reopen: bool, due: bool = False, queued: bool = False
    ) -> Claim:
        """Claim the run, or with ``create`` create it (committed before any node starts);
        ``reopen`` (resume) claims a failed run too; ``due`` (``resume_due``) only a run still
        parked in its retry wait; ``queued`` only a run still queued for its keys."""
        new = self.row if create else None
        store, run_id = self.store, self.row.run_id
        claim = await store.claim(
            run_id, self.owner, new=new, reopen=reopen, due=due, queued=queued
        )
        self.adopt(claim)
        return claim

    def adopt(self, claim: Claim, owner: str | None = None) -> None:
        """Hold the run as ``claim`` gave it (to ``owner``, when a worker claimed it)."""
        self.token = claim.token
        if owner is not None:
            self.owner = owner
        if claim.outcome == "claimed" and claim.run is not None:
            stored = claim.run
            self.row = dataclasses.replace(stored, status="running", nodes=[], finished_at=None)

    def add(self, name: str, state: NodeState) -> None:
        """Queue node ``name``'s record; a success whose output is not strict JSON becomes an
        ``OutputError`` failure first."""
        status, output = state["status"], None
        if status == "success":
            try:  # encoded as the node finished (``_encode``), or plain (a scalar)
                output = state.text or to_json(state["output"])
            except (TypeError, ValueError, RecursionError) as exc:
                state.fail(OutputError(name, unencodable(exc)))
                status = "failure"
        if status == "success" and len(state.trace) == 1:  # the common record, built directly:
            # what record() makes of it (tests/test_store.py checks), at half the cost
            figures = f"{state.duration:.6f}, null, {state.trace[0].started:.6f}"
            text = f'["{name}", "success", {output}, null, 1, {figures}]'
        else:
            trace = trace_json(state.trace)
            error, attempts, duration = state["error"], state.attempts, state.duration
            status = status or "failure"
            text = node_text(name, status, output, error, attempts, duration, state.reason, trace)
        self._queue(text)

    def _row_changed(self) -> None:
        """Write the run row (as it is now) with the next batch."""
        self.run = dataclasses.replace(self.row, nodes=[])

    def _queue(self, text: str) -> None:
        self.pending.append(text)
        if not self.signalled:  # wake the writer (once per batch)
            self.signalled = True
            self.queued.set()

    def node_started(self, node: str, attempt: int) -> None:
        if node in self.long:  # its long retry wait is over
            self._woke(node)

    def node_waiting(self, node: str, state: Any, wait: Wait) -> None:
        """Record ``node`` ``waiting`` with its due time (a retry wait: a resume continues at
        the next attempt; a wait for a rate limit's turn, reason ``throttled``: likewise, its
        permits taken; a wait or sleep node: it is decided again, its due time kept by the
        store). A wait of at least the store's ``park_after_seconds`` makes the run
        ``waiting``, due when its first waiting node is (never, when none has a due time)."""
        info = wait.error
        error = None if info is None else {"type": info["type"], "message": info["message"]}
        due = wait.due if math.isfinite(wait.due) else None
        trace = trace_json(state.trace)
        why = "throttled" if wait.kind == "throttled" else None  # its permits are taken
        self._queue(node_text(node, "waiting", None, error, state.attempts, 0.0, why, trace, due))
        if wait.seconds >= self.store.park_after_seconds:
            self.long[node] = due
            self._parked_row()

    def _parked_row(self) -> None:
        """The run row while nodes wait long: ``waiting``, due at the earliest of them."""
        dues = [due for due in self.long.values() if due is not None]
        row = self.row
        row.status, row.retry_due = "waiting", min(dues) if dues else None
        self._row_changed()

    def _woke(self, node: str) -> None:
        """Node ``node``'s long wait is over: the run runs again once none is left."""
        del self.long[node]
        if self.long:
            self._parked_row()
        else:
            self.row.status, self.row.retry_due = "running", None
            self._row_changed()

    def node_finished(self, node: str, state: Any) -> None:
        if node in self.long:  # a wait or sleep node that waited long
            self._woke(node)
        self.add(node, state)

    def run_started(self, attempt: int) -> None:
        self.start(attempt)

    async def run_retrying(self, attempt: int, error: Mapping[str, str], wait: float) -> None:
        await self.retrying(attempt, dict(error), wait)

    async def run_finished(self, result: RunResult) -> None:
        await self.finish(result)

    async def run_cancelled(self, parked: bool) -> None:
        await self.cancelled()

    async def writer(self) -> None:
        """The run's writer task: wait for a record, let others join it for ``COMMIT_DELAY``,
        write the batch; with nothing to write for ``heartbeat_seconds``, renew the lease."""
        heartbeat, stopping = self.store.heartbeat_seconds, self.stopping
        while not stopping.is_set():
            with anyio.move_on_after(heartbeat):
                await self.queued.wait()
                with anyio.move_on_after(COMMIT_DELAY):
                    await stopping.wait()
            if stopping.is_set():  # what is queued goes with the run's end (finish)
                return
            self.queued, self.signalled = anyio.Event(), False
            try:
                request = await self.flush(renew=True)
            except LeaseLost:
                self.lost = True
                self.scope.cancel()
                return
            except Exception as exc:  # the records stay queued: the next write takes them
                self.outage_wait(exc)
                continue
            self.outage_over()
            if request is not None:  # cancelled from elsewhere: stop the run's nodes
                self.cancel_request = request
                self.scope.cancel()
                return

    def stop(self) -> None:
        """The run has ended: the writer returns (at once, or after a write in progress).
        Stopping it rather than cancelling it leaves no reference cycles of cancellation."""
        self.stopping.set()
        self.queued.set()

    async def flush(self, *, renew: bool = False, release: bool = False) -> dict[str, str] | None:
        """Write everything queued (and the run row, if it changed) now, in one transaction;
        with ``renew``, write even with nothing queued (it renews the lease). Returns a
        pending cancel request, or None.

        Raises:
            LeaseLost: another owner has claimed the run.
        """
        async with self.lock:
            batch, run = list(self.pending), self.run
            if not (batch or run or renew or release):
                return None
            request = await self.store.write(
                self.row.run_id, self.token, self.attempt, batch, run, release=release
            )
            del self.pending[: len(batch)]  # only now: an interrupted write keeps its batch
            if self.run is run:
                self.run = None
            return request

    def stopped(self) -> RunCancelled | None:
        """The error the run's caller gets when a cancel request stopped it, else None."""
        request = self.cancel_request
        if request is None:
            return None
        return cancelled_from(self.row.run_id, cancelled_error(request))

    def start(self, attempt: int) -> None:
        """Workflow-level attempt ``attempt`` is running (written with its first records)."""
        self.attempt = attempt
        self.long.clear()  # waits of an earlier attempt are over
        self.row.status, self.row.attempts, self.row.retry_due = "running", attempt, None
        self._row_changed()

    async def retrying(self, attempts: int, error: dict[str, str], wait: float) -> None:
        """A failed attempt will run again after ``wait``: record when, so that it survives a
        restart (``resume_due``)."""
        row = self.row
        row.status, row.attempts, row.error = "retrying", attempts, error
        row.retry_due = time.time() + wait
        self._row_changed()
        await self.persist()

    async def finish(self, result: RunResult) -> None:
        """The run ended: its status, output and last records in one transaction; the run is
        released."""
        row = self.row
        row.status, row.attempts, row.retry_due = result.status, result.attempts, None
        row.error = result.error.model_dump() if result.error else None
        row.finished_at = result.finished_at.isoformat()
        try:
            row.output = to_json(result.output)
        except (TypeError, ValueError, RecursionError):
            row.output = None
        self._row_changed()
        await self.persist(release=True)

    async def persist(self, *, release: bool = False) -> None:
        """``flush``, tried again (with backoff, one log line per outage) until the store
        takes it: a run's end, or its workflow retry, is never lost to a database restart
        (given up only when cancelled, or when another owner took the run).

        Raises:
            LeaseLost: another owner has claimed the run.
        """
        while True:
            try:
                await self.flush(release=release)
            except LeaseLost:
                raise
            except Exception as exc:
                await anyio.sleep(self.outage_wait(exc))
                continue
            self.outage_over()
            return

    def outage_wait(self, exc: BaseException) -> float:
        """A write failed (the store is down): one log line per outage; the seconds to wait
        before trying again."""
        self.outage = self.outage or Outage(f"run {self.row.run_id}")
        return self.outage.failed(exc)

    def outage_over(self) -> None:
        """A write succeeded: the end of an outage, if there was one, is logged."""
        if self.outage is not None:
            self.outage.answered()

    async def cancelled(self) -> None:
        """The run stopped before its end: keep what finished and release the run. Stopped by
        a cancel request or by its caller, it is stored ``cancelled`` (resumable by hand, by
        nothing else), whatever it was doing, parked waits included. A worker's run
        (``handover``: the worker is shutting down, or parks the run) keeps its status: a
        ``running`` one is reported ``interrupted`` and continued by the next worker, a parked
        one when due."""
        if self.lost:
            return
        with anyio.CancelScope(shield=True):
            row = self.row
            if self.cancel_request is not None or not self.handover:
                request = self.cancel_request or {
                    "reason": "its caller cancelled the run",
                    "by": describe(self.owner),
                }
                row.status, row.retry_due, row.error = "cancelled", None, cancelled_error(request)
                row.finished_at = datetime.now(UTC).isoformat()
            elif row.status == "running":
                row.retry_due = None  # released as running: any worker continues it at once
            self._row_changed()
            with contextlib.suppress(LeaseLost):  # taken over meanwhile: the new owner's stand
                await self.flush(release=True)


__all__: Sequence[str] = ["DurableRun", "input_json"]
