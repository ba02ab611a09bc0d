"""Waiting for people and for time, in this process: a run's mailbox of signals, the function a
wait node runs (take the oldest signal of its name not yet taken, or the first that arrives,
until its due time) and the one a sleep node runs.

A mailbox keeps every signal sent to the run in send order (``seq`` from 1), whether it came
before or after the wait started; a keyed send is idempotent (same payload: nothing new; another
payload: ``SignalConflict``). Taking a signal happens in one step of the loop, so signal versus
timeout is decided once: the wait succeeds with the signal taken, or fails with
``SignalTimeout`` and the signal stays for a later wait.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel

from .._errors import InputError, RunNotFound, SignalConflict, SignalTimeout
from .._models import SignalSent
from .._nodes import SleepSpec, WaitSpec
from .context import CURRENT
from .observe import Wait
from .payloads import validated

if TYPE_CHECKING:
    from .states import RunState


@dataclass(slots=True)
class Signal:
    """One signal in a run's mailbox; ``consumed_by`` is the wait node that took it."""

    seq: int
    name: str
    payload: Any
    key: str | None = None
    consumed_by: str | None = None


class Mailbox:
    """The signals of one run executing in this process, and what its wait nodes accept."""

    __slots__ = ("arrived", "declared", "run_id", "signals", "state", "workflow")

    def __init__(self, run_id: str, workflow: str, declared: Mapping[str, Any], state: RunState):
        self.run_id, self.workflow, self.state = run_id, workflow, state
        self.declared = dict(declared)  # signal name -> its schema (None: any JSON)
        self.signals: list[Signal] = []
        self.arrived = anyio.Event()

    def send(self, name: str, payload: Any, key: str | None) -> SignalSent:
        """Keep signal ``name`` (its payload already checked); wake the waits.

        Raises:
            SignalConflict: ``key`` was sent before with another payload.
        """
        for kept in self.signals:
            if key is not None and kept.key == key and kept.name == name:
                if kept.payload != payload:
                    raise SignalConflict(self.run_id, name, key)
                return SignalSent(run_id=self.run_id, signal=name, seq=kept.seq, duplicate=True)
        seq = len(self.signals) + 1
        self.signals.append(Signal(seq, name, payload, key))
        self.arrived.set()
        self.arrived = anyio.Event()
        return SignalSent(run_id=self.run_id, signal=name, seq=seq)

    def take(self, name: str, node: str) -> Signal | None:
        """The oldest signal ``name`` no wait took yet, now taken by ``node``; or None."""
        for kept in self.signals:
            if kept.name == name and kept.consumed_by is None:
                kept.consumed_by = node
                return kept
        return None

    async def wait(self, spec: WaitSpec, node: str) -> Any:
        """Wait node ``node``: the payload of the signal it takes.

        Raises:
            SignalTimeout: ``spec.timeout_seconds`` passed first.
        """
        taken = self.take(spec.signal, node)
        if taken is not None:
            return taken.payload
        limit = math.inf if spec.timeout_seconds is None else spec.timeout_seconds
        with self._announced(node, Wait("signal", limit, time.time() + limit, signal=spec.signal)):
            with anyio.move_on_after(limit):
                while (taken := self.take(spec.signal, node)) is None:
                    await self.arrived.wait()
                return taken.payload
        raise SignalTimeout(node, spec.signal, limit)

    @contextmanager
    def _announced(self, node: str, wait: Wait) -> Iterator[None]:
        """Tell the run's scheduler (and so its observers) that ``node`` waits, until it ends."""
        scheduler = self.state.scheduler
        if scheduler is None:
            yield
            return
        scheduler.node_waits(node, wait)
        try:
            yield
        finally:
            scheduler.woke(wait)

    async def sleep(self, node: str, seconds: float) -> dict[str, str]:
        """Sleep node ``node``: ``seconds`` on the loop's clock (none when it is due already)."""
        if seconds > 0:
            with self._announced(node, Wait("sleep", seconds, time.time() + seconds)):
                await anyio.sleep(seconds)
        return {"woke_at": datetime.now(UTC).isoformat()}


_MAILBOXES: dict[str, Mailbox] = {}  # the runs executing in this process that can wait


@contextmanager
def mailbox(box: Mailbox) -> Iterator[None]:
    """While the block runs, ``box``'s run takes signals in this process."""
    _MAILBOXES[box.run_id] = box
    try:
        yield
    finally:
        _MAILBOXES.pop(box.run_id, None)


def mailbox_of(run_id: str) -> Mailbox | None:
    """The mailbox of run ``run_id``, executing in this process (None: it does not)."""
    return _MAILBOXES.get(run_id)


def send_here(workflow: str, run_id: str, name: str, payload: Any, key: str | None) -> SignalSent:
    """Send signal ``name`` to run ``run_id`` of ``workflow``, executing in this process.

    Raises:
        RunNotFound: no such run executes here.
        InputError: ``name`` is no signal of the workflow's waits, or the payload is not JSON
            or fails the wait's schema.
        SignalConflict: ``key`` was used before with another payload.
    """
    box = _MAILBOXES.get(run_id)
    if box is None or box.workflow != workflow:
        raise RunNotFound(run_id, "this process (without a store)")
    return box.send(name, checked_payload(box.declared, name, payload), key)


def checked_payload(declared: Mapping[str, Any], name: str, payload: Any) -> Any:
    """``payload`` as the wait for signal ``name`` takes it: plain JSON, validated by its
    schema (a pydantic model: its JSON form).

    Raises:
        InputError: an undeclared signal, a payload that is not JSON, or one that fails the
            schema (naming the field).
    """
    if name not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise InputError(f"no wait takes signal {name!r} (its signals: {known})", field="signal")
    schema = declared[name]
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    try:
        payload = json.loads(json.dumps(payload, allow_nan=False))
    except (TypeError, ValueError) as exc:
        why = f"the payload of signal {name!r} is not JSON: {exc}"
        raise InputError(why, field="payload") from None
    return validated(schema, name, payload)


def wait_function(spec: WaitSpec) -> Callable[[], Awaitable[Any]]:
    """The function a wait node runs."""

    async def wait() -> Any:
        run_id, _, node, _, _ = CURRENT.get()
        return await _mailbox_of(run_id).wait(spec, node)

    return wait


def sleep_function(spec: SleepSpec) -> Callable[..., Awaitable[dict[str, str]]]:
    """The function a sleep node runs: ``until`` is its resolved input, when it has one."""

    async def sleep(until: Any = None) -> dict[str, str]:
        run_id, _, node, _, _ = CURRENT.get()
        seconds = spec.seconds if spec.seconds is not None else due_in(until, node)
        return await _mailbox_of(run_id).sleep(node, seconds)

    return sleep


def _mailbox_of(run_id: str) -> Mailbox:
    box = _MAILBOXES.get(run_id)
    assert box is not None, "a wait or sleep node runs only inside its run's mailbox"
    return box


def due_in(until: Any, node: str) -> float:
    """Seconds from now until ``until`` (ISO 8601 with a timezone, or epoch seconds).

    Raises:
        InputError: anything else.
    """
    if isinstance(until, int | float) and not isinstance(until, bool) and math.isfinite(until):
        return float(until) - time.time()
    if isinstance(until, str):
        try:
            when = datetime.fromisoformat(until)
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            return when.timestamp() - time.time()
    raise InputError(
        f"until must be ISO 8601 with a timezone or epoch seconds, got {until!r}",
        node=node,
        field="until",
    )
