"""One run attempt: a single task group; a node starts the moment its own dependencies have
finished and its trigger allows it, skips cascade without spawning tasks, and every finish costs
O(the finished node's dependents)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from types import GeneratorType
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import InputError
from .attempt import attempt
from .direct import Direct
from .ending import Ending
from .kinds import PREPARE
from .map import run_map
from .native import ASYNCIO_TOOLS, LoopGroup, Spawn, task_group
from .parking import Waits
from .rules import blocked_by, taken_failures
from .states import NodeState, RunState

if TYPE_CHECKING:
    from .planned import Plan, PlanNode
    from .resume import Parked, Restart


# A task running released nodes one after another yields to the loop once it has gone this long
# (seconds) without: other tasks wait at most this (plus one node), and a chain of nodes that
# finish without awaiting does not pay a loop turn each.
YIELD_AFTER = 0.0002
# A plain task node that starts this long after the task's last turn is awaited in a ``probe``
# (on asyncio): if it suspends, it was the task's turn, and no checkpoint is needed after it. A
# node starts that late only on a busy loop (after a checkpoint, or a node, that took this long);
# nodes that never await on an idle loop start earlier than that, and are not probed.
PROBE_AFTER = YIELD_AFTER
# Shared, never written: a fresh run has no node parked (``_unpark`` pops only a node it has).
_NOTHING_PARKED: dict[int, Parked] = {}
_NONE_HANDLED: set[int] = set()  # shared, never written: _settle makes a run its own set
_NO_QUEUE: deque[int] = deque()  # shared, never written: nothing queues without a cap


class Scheduler(Direct, Ending, Waits):
    """Executes a plan once against one input; ``states[i]`` is node i's state."""

    __slots__ = (
        "cap",
        "ctx",
        "fail_fast",
        "failures",
        "group",
        "handled",
        "index",
        "nodes",
        "observers",
        "parked",
        "pending",
        "queue",
        "ready",
        "results",
        "run_node",
        "running",
        "scope",
        "spawn",
        "states",
        "stopped",
    )

    def __init__(
        self,
        plan: Plan,
        input: Any,
        ctx: RunState,
        cap: int | None,
        where: Restart | None = None,
    ) -> None:
        self.nodes = plan.nodes
        self.index = plan.index
        self.results: dict[str, Any] = {"input": input}
        self.states: list[NodeState | None] = [None] * len(plan.nodes)
        self.parked: dict[int, Parked] = _NOTHING_PARKED
        if where is None:
            self.pending = list(plan.indegrees)
            self.ready = plan.roots
        else:  # a resumed run: its kept nodes count as finished (see _resume)
            self.pending, self.ready = list(where.pending), where.ready
            self.parked = dict(where.parked)
            for i, state in where.seeds.items():
                self.states[i] = state
                self.results[self.nodes[i].name] = state
        self.handled: set[int] = _NONE_HANDLED  # (a set of its own once one is: _settle)
        self.ctx = ctx
        self.observers = ctx.observers
        self.long = 0  # running nodes in a wait of at least ``ctx.park_after`` seconds
        self.cap = cap
        self.running = 0
        self.queue: deque[int] = _NO_QUEUE if cap is None else deque()  # (only a cap queues)
        self.spawn: Spawn | None = None
        self.group: LoopGroup | None = None
        self.run_node: Callable[[int | None], Coroutine[Any, Any, bool]] | None = None
        self.fail_fast = plan.fail_fast
        self.failures: list[int] = []  # raise nodes that failed, in the order noted (_note)
        self.stopped: int | None = None  # the node whose failure stopped the run (fail_fast)
        self.scope: anyio.CancelScope | None = None

    def execute(self, timeout: float | None) -> Coroutine[Any, Any, bool]:
        """Run every node; return False if the run's deadline expired first. (A plain
        function returning the coroutine: one frame fewer under every node's await.)"""
        native = self.ctx.checkpoint is ASYNCIO_TOOLS[1]  # asyncio's (loop_tools): not trio's
        run = self._run(None, main=True) if native else self._nursery()
        if timeout is None and not self.fail_fast:  # no cancel scope to enter and leave
            return run
        return self._scoped(run, timeout)

    async def _scoped(self, run: Coroutine[Any, Any, bool], timeout: float | None) -> bool:
        """``run`` under the run's deadline (``timeout``) and the scope fail_fast cancels."""
        with anyio.move_on_after(math.inf if timeout is None else timeout) as scope:
            self.scope = scope
            await run
        if self.stopped is not None:
            self._halt(self.nodes[self.stopped].name)
        elif scope.cancelled_caught:
            self._expire(timeout)
            return False
        return True

    def _begin(self) -> int | None:
        """Start the run: settle the ready nodes and return the first to run in this task, as
        code awaiting it would (a run of one node, or of a chain, starts no task at all). One
        bound method serves every task; the reference cycle it makes is broken by ``_end``."""
        self.run_node = self._run
        self.ctx.scheduler = self  # a node's wait comes here (``waiting``)
        return self._settle(list(self.ready), follow=True)

    def _end(self) -> None:
        self.run_node = self.spawn = self.group = self.scope = self.ctx.scheduler = None

    def _aborted(self, main: bool) -> None:
        """The run's task (``main``) is stopped by an exception: cancel every node task."""
        if main and self.group is not None:
            self.group.abort()

    async def _closed(self) -> None:
        """The run's task is done with its nodes: wait for the node tasks, then let go."""
        try:
            if self.group is not None:
                await self.group.wait()
        finally:
            self._end()

    async def _nursery(self) -> bool:
        """The run on trio: in a nursery."""
        try:
            async with task_group() as self.spawn:
                first = self._begin()
                if first is not None:
                    await self._run(first)
        except BaseExceptionGroup as group:
            # Node code never raises Exception out of a node task; what gets here is a
            # BaseException (KeyboardInterrupt, SystemExit...): re-raise it as itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            self._end()
        return True

    def _start(self, i: int) -> None:
        if self.cap is not None and self.running >= self.cap:
            self.queue.append(i)
            return
        self.running += 1
        assert self.run_node is not None
        if self.spawn is None:  # asyncio: the run's first task makes its group
            self.group = LoopGroup()
            self.spawn = self.group.spawn
        self.spawn(self.run_node, i)

    async def _run(self, i: int | None, main: bool = False) -> bool:
        """Run node i; then, while a node it released can run, run that one in this same task
        (the others get tasks of their own): a chain costs one task, not one per node. A plain
        task node's one call, and another kind's coroutine, are awaited right here
        (``Direct._first``), the rest in ``_other``. The clock is read once per node: one
        node's end is the next one's start. The run's own
        task (``main``, on asyncio) begins the run (``_begin``) and waits for the node tasks
        at its end (``_closed``): no frame of its own above every node's await."""
        clock = self.ctx.clock
        try:
            i = self._begin() if main else i
            turn = start = clock()  # turn: when this task last let the loop run others
            seen = [False]  # whether the last node probed suspended (``probe``)
            while i is not None:
                pn = self.nodes[i]
                late = seen if start - turn > PROBE_AFTER else None  # (seen: see ``probe``)
                if (call := self._first(i, pn, late)) is None:
                    i = await self._other(i, pn, start)
                    end = clock()
                else:
                    try:
                        output = await call
                    except BaseException as caught:
                        output = self._failed_first(pn, caught, start)
                    end = clock()
                    i = self._ended(i, pn, output, start, end)
                if i is not None and end - turn > YIELD_AFTER:  # a turn is due: unless the
                    # node let the loop run (that was the turn), let it run now (a loop slow
                    # to come back is a busy one: the next node is probed)
                    probed = isinstance(call, GeneratorType) and seen[0]  # (only a probe is)
                    turn, end = (start, end) if probed else (end, await self._turn())
                start = end
        except BaseException:
            self._aborted(main)
            raise
        finally:
            if main:
                await self._closed()
        return True

    async def _turn(self) -> float:
        """Let the loop run other tasks (the task went ``YIELD_AFTER`` without a turn, and its
        last node was not seen to suspend); return the time it came back."""
        await self.ctx.checkpoint()
        return self.ctx.clock()

    async def _other(self, i: int, pn: PlanNode, start: float) -> int | None:
        """Node i, that ``_first`` gave no call: a stop overtook it (fail_fast, while this
        task waited: it never starts, ``_halt`` skips it); it was resumed in a retry wait
        (the rest of the wait, then its attempts); or its arguments could not be resolved
        (it failed). Return what ``_finish`` gives."""
        if self.stopped is not None:
            self.running -= 1
            return None
        if self.parked and i in self.parked:
            start = await self._unpark(i)
            call = self._prepared(i, pn)
            if call is not None:
                await call
        return self._finish(i, self.ctx.clock() - start)

    def _prepared(self, i: int, pn: PlanNode) -> Awaitable[Any] | None:
        """What runs node i, of any kind but a plain task (a map, or ``attempt``): a
        coroutine for ``_run`` to await; None when it failed at once (its arguments)."""
        state = self.states[i]
        if state is None:  # (a node resumed in a retry wait has its state)
            state = self.states[i] = NodeState()
        if pn.kind == "map":
            return run_map(pn, self.results, state, self.ctx)
        try:
            fn, args, kwargs = PREPARE[pn.kind](pn, self.results)
        except InputError as exc:
            state.attempts = 1
            state.fail(exc)
            return None
        return attempt(pn, fn, args, kwargs, state, self.ctx)

    def _after(self, follow: int | None) -> None:
        """After a node's end: start queued nodes; park the run if the nodes left running all
        wait long (and this task has no node to run next)."""
        if self.queue:
            self._drain()
        if self.long and follow is None:
            self._park_if_all_wait()

    def _drain(self) -> None:
        """Start queued nodes while the concurrency cap allows."""
        while self.queue and self.stopped is None and (self.cap is None or self.running < self.cap):
            self._start(self.queue.popleft())

    async def _unpark(self, i: int) -> float:
        """Node i, resumed in a retry wait, waits until its next attempt is due; return when
        that was (the node's time counts from it)."""
        parked = self.parked.pop(i)
        wait = parked.due - time.time()
        if wait > 0:
            await anyio.sleep(wait)
        self.states[i] = parked.state
        return self.ctx.clock()

    def _finish(self, i: int, duration: float) -> int | None:
        """Node i ended after ``duration`` seconds: record it, settle every dependent whose
        last dependency it was, and return one of them for this task to run next (or None);
        start queued nodes, park the run if the nodes left running all wait long."""
        state = self.states[i]
        assert state is not None
        state.duration = duration
        self.running -= 1  # (a chain's link is recorded in one step by Direct._ended instead)
        ready = self._note(i, state, None)
        follow = None if ready is None else self._follow(ready, state)
        if self.queue or self.long:
            self._after(follow)
        return follow

    def _follow(self, ready: list[int], state: NodeState) -> int | None:
        """Settle the nodes a node (``state``) released; return the one to run next here."""
        if (  # one node released, that runs when this one succeeded: a chain's next node
            len(ready) == 1
            and state["status"] == "success"
            and self.nodes[ready[0]].lone
            and self.stopped is None
            and not self.queue
        ):
            self.running += 1
            return ready[0]
        return self._settle(ready, follow=True)

    def _note(self, i: int, state: NodeState, ready: list[int] | None) -> list[int] | None:
        """Store node i's envelope and return ``ready`` plus the dependents it released (the
        list is made only when one is)."""
        pn = self.nodes[i]
        if self.observers:  # a durable run's writer stores it (group commit); events...
            for observer in self.observers:
                observer.node_finished(pn.name, state)
        self.results[pn.name] = state  # the state is its own envelope
        if state["status"] == "failure" and pn.raises:
            self.failures.append(i)  # first_failure looks among these
            if self.fail_fast and self.stopped is None:
                self.stopped = i  # stop the run: cancel every running node, start no other
                if self.scope is not None:
                    self.scope.cancel()
        pending = self.pending
        for dependent in pn.dependents:
            pending[dependent] -= 1
            if not pending[dependent]:
                if ready is None:
                    ready = [dependent]
                else:
                    ready.append(dependent)
        return ready

    def _settle(self, ready: list[int], follow: bool = False) -> int | None:
        """Start or skip nodes whose dependencies have all finished (a worklist: no recursion).
        With ``follow``, the first node to run is returned for the calling task to run itself
        (it takes the slot that task's node just freed), unless others wait for a slot."""
        next_node = None
        while ready:
            i = ready.pop()
            if self.stopped is not None:  # fail_fast: nothing starts any more (see _halt)
                continue
            pn = self.nodes[i]
            blocked = blocked_by(pn, self.nodes, self.states)
            if blocked is None:
                if pn.trigger == "on_failure":  # it runs: the failures it handles are taken
                    self.handled = self.handled.union(taken_failures(pn, self.states))
                if follow and next_node is None and not self.queue:
                    next_node = i
                    self.running += 1
                else:
                    self._start(i)
            else:
                state = self.states[i] = NodeState(
                    status="skip", reason=blocked[0], cause=blocked[1]
                )
                self._note(i, state, ready)
        return next_node
