"""A plain task node's one attempt, as the scheduler's own task runs it: no ``attempt`` loop,
no task, no frame between the scheduler and the node's coroutine. ``Direct._first`` makes the
node's state and its call (and sets ``flowrt.current()`` for it); the scheduler awaits the
call; ``_ended`` records what it returned, ``_failed_first`` what it raised. The node is
``PlanNode.direct``: a task node without retries, timeout or rate limit."""

from __future__ import annotations

from collections.abc import Awaitable
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from .._errors import InputError
from .attempt import failed_attempt, started
from .context import CURRENT
from .encode import PLAIN, settle_output
from .native import ASYNCIO_TOOLS
from .probe import probe
from .states import NodeState, RunState

if TYPE_CHECKING:
    from collections import deque

    from .observe import Observers
    from .planned import PlanNode
    from .resume import Parked


ASYNCIO = ASYNCIO_TOOLS[1]  # asyncio's checkpoint: a run on asyncio (or uvloop)


class Direct:
    """The scheduler's plain task nodes (a mixin of ``Scheduler``, whose state they read)."""

    __slots__ = ()

    if TYPE_CHECKING:  # the scheduler's own
        ctx: RunState
        observers: Observers
        states: list[NodeState | None]
        results: dict[str, Any]
        pending: list[int]
        queue: deque[int]
        long: int
        stopped: int | None
        parked: dict[int, Parked]

        def _finish(self, i: int, duration: float) -> int | None: ...

        def _prepared(self, i: int, pn: PlanNode) -> Awaitable[Any] | None: ...

    def _first(self, i: int, pn: PlanNode, seen: list[bool] | None) -> Awaitable[Any] | None:
        """What ``_run`` awaits for node i: a plain task's one call (its state made, and
        ``flowrt.current()`` answering for it from now on; given ``seen``, it starts late in
        this task's turn: on asyncio, in a ``probe`` noting in ``seen`` whether it suspended),
        or another kind's coroutine (``attempt``'s loop, a map: ``_prepared``). None, for
        ``_other``: a stop overtook it, it was resumed in a retry wait, or its arguments could
        not be resolved (it failed)."""
        if self.stopped is not None:
            return None
        if not pn.direct:
            if self.parked and i in self.parked:
                return None
            return self._prepared(i, pn)
        state = self.states[i] = NodeState()
        state.attempts = 1
        try:
            if not self.observers:
                call = pn.start(self.results)
            else:
                args, kwargs = pn.arguments(self.results)
                started(self.observers, pn.name, 1)  # told before the call is made: it may raise
                assert pn.invoke is not None  # (a task node has one)
                call = pn.invoke(*args, **kwargs)
        except InputError as exc:
            state.fail(exc)
            return None
        ctx = self.ctx
        state.token = CURRENT.set((ctx.run_id, ctx.workflow, pn.name, 1, None))
        if seen is not None and call.__class__ is CoroutineType and ctx.checkpoint is ASYNCIO:
            return probe(call, seen)
        return call

    def _ended(self, i: int, pn: PlanNode, output: Any, start: float, end: float) -> int | None:
        """What ``_run`` awaited for node i (from ``start`` to ``end``) ended: a plain task's
        call returned ``output`` (it succeeded; its status is still None), or the node ended
        with its status set (it failed: ``_failed_first``; another kind's coroutine filled it
        in). Record it (a chain's link in one step) and return the node to run next in this
        task (``_finish``)."""
        state = self.states[i]
        assert state is not None
        if state["status"] is None:  # it returned
            CURRENT.reset(state.token)
            del state.token  # (it holds the context's previous value)
            state.first = start - self.ctx.origin  # its trace record is made when read (trace)
            state["status"] = "success"
            state["output"] = output
            if output.__class__ not in PLAIN:  # else it is JSON as it is
                settle_output(pn.name, state)  # (which may fail it)
        after = pn.after
        if (  # a chain's link: what _note and _follow make of it, in one step
            after is not None
            and state["status"] == "success"
            and not (self.observers or self.queue or self.long)
            and self.stopped is None
        ):
            state.duration = end - start
            self.results[pn.name] = state
            self.pending[after] = 0  # its one dependency has finished; it runs in this task
            return after
        return self._finish(i, end - start)

    def _failed_first(self, pn: PlanNode, caught: BaseException, start: float) -> Any:
        """What ``_run`` awaited for ``pn`` raised ``caught``: a plain task's attempt (it has
        no retries) fails (a cancellation, or KeyboardInterrupt..., is raised again); what
        comes out of another kind's coroutine (a cancellation) is raised again as it is.
        Returns None: the output ``_ended`` is then given (the node's status is set)."""
        ctx = self.ctx
        state = self.states[pn.index]
        assert state is not None
        try:
            if not pn.direct:
                raise caught
            CURRENT.reset(state.token)
            del state.token
            failed_attempt(pn, caught, state, ctx, start - ctx.origin)
        finally:  # a cancellation's traceback holds this frame: no cycle through the local
            del caught
        return None
