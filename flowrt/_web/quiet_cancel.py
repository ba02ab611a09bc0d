"""Cancelling a request's run when its client goes away, at no cost until it does: flowrt's
speed trick for ``POST /run`` on asyncio (its equivalence test: tests/test_quiet_cancel.py).

An anyio ``CancelScope`` around the run, entered and left by every request, costs about 3 µs
(an object, two sets, the task's scope record) for a cancellation that almost never comes.
``Canceller`` enters nothing. It notes the task and the anyio scope the task is in; when the
client goes away it cancels the task as that scope's ``cancel()`` would have:

- not while the task is inside a shielded anyio scope entered since (it waits for the task to
  leave it), nor while a cancellation is already on its way to the task;
- again on every loop turn until the run is over: a cancellation is a state, not an event
  (code that catches one and awaits again is cancelled again);
- its cancellations are taken back (``Task.uncancel``) when the run ends: a ``CancelledError``
  is swallowed only when no other cancellation of the task is pending (a server's shutdown
  that lands at the same moment goes on).

One difference, of timing only: the tasks of an anyio task group inside the run are cancelled
by their group once the cancellation reaches the run's task, a loop turn after a scope would
have reached them; they end before the run does, either way.

It reads anyio's record of a task's scopes (``anyio._backends._asyncio._task_states``), as
anyio's own scopes do; where that record is missing (another anyio), ``usable()`` is False and
the caller enters a real ``CancelScope``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

_STATES: Any
try:  # anyio's own record of each asyncio task's innermost cancel scope
    from anyio._backends._asyncio import _task_states as _STATES
except ImportError:  # pragma: no cover - another anyio: the caller uses a CancelScope
    _STATES = None

MESSAGE = "flowrt: the client went away"


def usable() -> bool:
    """Whether ``Canceller`` can see the task's anyio scopes (else use a ``CancelScope``)."""
    return _STATES is not None


def _innermost(task: asyncio.Task[Any]) -> Any:
    """The anyio cancel scope ``task`` is in now (None: none)."""
    state = _STATES.get(task) if _STATES is not None else None
    return None if state is None else state.cancel_scope


class Canceller:
    """The cancellation of the current task's run, delivered only if ``cancel()`` is called
    (see the module). ``close()`` when the run is over, whatever its end."""

    __slots__ = ("_at_enter", "_outer", "_running", "_sent", "_task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self._outer = _innermost(task)  # scopes entered since (inside the run) may shield it
        self._at_enter = task.cancelling()
        self._sent = 0  # cancellations this canceller delivered (taken back at close)
        self._running = True

    def cancel(self) -> None:
        """Cancel the run: now if the task may be, and again on each loop turn until
        ``close()``."""
        if not self._running or self._task.done():
            return
        if self._deliverable():
            self._task.cancel(MESSAGE)
            self._sent += 1
        self._task.get_loop().call_soon(self.cancel)

    def _deliverable(self) -> bool:
        """Whether a cancellation may be delivered now, as an anyio scope decides: not to the
        running task itself, not twice at once, not to a task about to resume, not inside a
        shielded scope entered since ``self`` was made."""
        task = self._task
        if task is asyncio.current_task() or task._must_cancel:  # type: ignore[attr-defined]
            return False
        waiter = task._fut_waiter  # type: ignore[attr-defined]
        if isinstance(waiter, asyncio.Future) and waiter.done():
            return False
        scope = _innermost(task)
        while scope is not None and scope is not self._outer:
            if scope.shield:
                return False
            scope = scope._parent_scope
        return True

    def close(self) -> bool:
        """The run is over: deliver nothing more, take this canceller's cancellations back.
        True when the task was cancelled by this canceller alone (its ``CancelledError`` is
        this canceller's to swallow); idempotent. (No cancellation of its can still be on its
        way: it never cancels the running task, and one delivered to a task waiting to run is
        thrown in at its next step, inside the run.)"""
        if self._running:
            self._running = False
            for _ in range(self._sent):
                self._task.uncancel()
        return self._sent > 0 and self._task.cancelling() <= self._at_enter


__all__: Sequence[str] = ["MESSAGE", "Canceller", "usable"]
