"""Waiting for people and for time in a stored run: the mailbox is the store's.

A wait node records its start in the store (``begin_wait``: its due time is fixed then, on the
store's clock, and a restart finds the same one), then asks the store to decide it
(``take_signal``: the oldest unconsumed signal consumed with the node's success recorded, or at
due its ``SignalTimeout`` recorded, in one transaction) when it starts, whenever a signal may
have arrived (a notification, a send from this process, or every ``poll_seconds``) and at its
due time. A sleep node records its start the same way and sleeps what is left. The store's
calls are shielded from cancellation (a decision in flight is kept, never half made) and tried
again through an outage.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .._errors import LeaseLost, SignalTimeout
from .._nodes import WaitSpec
from .._store.mailbox import Decided
from .._store.records import node_text
from .observe import Wait
from .signals import Mailbox

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .durable import DurableRun
    from .states import RunState

T = TypeVar("T")
Records = tuple[Callable[[str], str], str]


class StoredMailbox(Mailbox):
    """The mailbox of a run with a store: signals are sent to the store (``flowrt.send_signal``),
    and a send from this process wakes the run's waits at once (``arrived``)."""

    __slots__ = ("durable",)

    def __init__(
        self,
        run_id: str,
        workflow: str,
        declared: Mapping[str, Any],
        state: RunState,
        durable: DurableRun,
    ) -> None:
        super().__init__(run_id, workflow, declared, state)
        self.durable = durable

    def poke(self) -> None:
        """A signal was sent to this run from this process: its waits look now."""
        self.arrived.set()
        self.arrived = anyio.Event()

    async def wait(self, spec: WaitSpec, node: str) -> Any:
        """Wait node ``node``: the payload of the signal it takes (see the module).

        Raises:
            SignalTimeout: its due time came first.
            LeaseLost: another owner took the run over.
        """
        store, attempt = self.durable.store, self.durable.attempt
        left = await self._stored(
            lambda: store.begin_wait(self.run_id, attempt, node, spec.signal, spec.timeout_seconds)
        )
        wait = (self.run_id, attempt, node, spec.signal)
        records = _records(node, spec)
        decided = await self._take(wait, records)
        if decided is None:
            limit = math.inf if left is None else max(left, 0.0)
            announced = Wait("signal", limit, time.time() + limit, signal=spec.signal)
            with self._announced(node, announced):
                decided = await self._until_decided(wait, records, limit)
        if decided.payload is None:
            raise SignalTimeout(node, spec.signal, spec.timeout_seconds or 0.0)
        return json.loads(decided.payload)

    async def _until_decided(
        self, wait: tuple[str, int, str, str], records: Records, limit: float
    ) -> Decided:
        """Ask the store again whenever a signal may have arrived, and at due."""
        deadline = anyio.current_time() + limit
        poll = self.durable.store.poll_seconds
        while True:
            left = deadline - anyio.current_time()
            await self._nudged(min(max(left, 0.01), poll))
            decided = await self._take(wait, records)
            if decided is not None:
                return decided

    async def _nudged(self, seconds: float) -> None:
        """Return when a signal may have arrived (the store's notification, or a send from
        this process), or after ``seconds``."""
        arrived = self.arrived
        with anyio.move_on_after(seconds):
            async with anyio.create_task_group() as group:

                async def sent_here() -> None:
                    await arrived.wait()
                    group.cancel_scope.cancel()

                group.start_soon(sent_here)
                try:
                    await self.durable.store.wait_for_signal(self.run_id, seconds)
                except Exception as exc:  # the store is down: the next look tries again
                    await anyio.sleep(min(self.durable.outage_wait(exc), seconds))
                group.cancel_scope.cancel()

    async def _take(self, wait: tuple[str, int, str, str], records: Records) -> Decided | None:
        token = self.durable.token
        return await self._stored(lambda: self.durable.store.take_signal(wait, token, records))

    async def _stored(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, shielded (its transaction is kept whole), tried again while the store
        is down.

        Raises:
            LeaseLost: another owner took the run over.
        """
        while True:
            try:
                with anyio.CancelScope(shield=True):
                    result = await call()
            except LeaseLost:
                raise
            except Exception as exc:
                await anyio.sleep(self.durable.outage_wait(exc))
                continue
            self.durable.outage_over()
            return result

    async def sleep(self, node: str, seconds: float) -> dict[str, str]:
        """Sleep node ``node``: until ``seconds`` after it first started (on the store's
        clock), however often the run was restarted since."""
        store, attempt = self.durable.store, self.durable.attempt
        left = await self._stored(
            lambda: store.begin_wait(self.run_id, attempt, node, None, max(seconds, 0.0))
        )
        if left is not None and left > 0:
            with self._announced(node, Wait("sleep", left, time.time() + left)):
                await anyio.sleep(left)
        return {"woke_at": datetime.now(UTC).isoformat()}


def _records(node: str, spec: WaitSpec) -> Records:
    """The records ``take_signal`` stores with its decision: the node's success with the
    payload (JSON text), and its timeout."""
    timeout = SignalTimeout(node, spec.signal, spec.timeout_seconds or 0.0)
    error = {"type": "SignalTimeout", "message": str(timeout)}

    def success(payload: str) -> str:
        return node_text(node, "success", payload, None, 1, 0.0, None, "null")

    return success, node_text(node, "failure", None, error, 1, 0.0, None, "null")
