"""One run attempt: a single task group; a node starts the moment its own dependencies have
finished and its trigger allows it, skips cascade without spawning tasks, and every finish costs
O(the finished node's dependents)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import InputError
from .attempt import NodeState, RunState, attempt
from .kinds import PREPARE
from .map import run_map
from .native import Spawn, task_group
from .rules import blocked_by, taken_before, taken_failures

if TYPE_CHECKING:
    from .observe import Wait
    from .planned import Plan, PlanNode
    from .resume import Parked, Restart


# A task running released nodes one after another yields to the loop once it has gone this long
# (seconds) without: other tasks wait at most this (plus one node), and a chain of nodes that
# finish without awaiting does not pay a loop turn each.
YIELD_AFTER = 0.0002


class Scheduler:
    """Executes a plan once against one input; ``states[i]`` is node i's state."""

    __slots__ = (
        "cap",
        "ctx",
        "fail_fast",
        "handled",
        "index",
        "long",
        "nodes",
        "observers",
        "order",
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
        self.parked: dict[int, Parked] = {}
        if where is None:
            self.pending = [len(pn.deps) for pn in plan.nodes]
            self.ready = plan.roots
        else:  # a resumed run: its kept nodes count as finished (see _resume)
            self.pending, self.ready = list(where.pending), where.ready
            self.parked = dict(where.parked)
            for i, state in where.seeds.items():
                self.states[i] = state
                self.results[self.nodes[i].name] = state
        self.order: list[int] = []
        self.handled: set[int] = set()
        self.ctx = ctx
        self.observers = ctx.observers
        self.long = 0  # running nodes in a wait of at least ``ctx.park_after`` seconds
        self.cap = cap
        self.running = 0
        self.queue: deque[int] = deque()
        self.spawn: Spawn | None = None
        self.run_node: Callable[[int | None], Coroutine[Any, Any, None]] | None = None
        self.fail_fast = plan.fail_fast
        self.stopped: int | None = None  # the node whose failure stopped the run (fail_fast)
        self.scope: anyio.CancelScope | None = None

    async def execute(self, timeout: float | None) -> bool:
        """Run every node; return False if the run's deadline expired first."""
        # One bound method for every task (a task group keeps it while the task runs); the
        # reference cycle it makes is broken when the run ends.
        self.run_node = self._run
        self.ctx.scheduler = self  # a node's wait comes here (``waiting``)
        try:
            if timeout is None and not self.fail_fast:  # no cancel scope to enter and leave
                await self._all()
                return True
            with anyio.move_on_after(math.inf if timeout is None else timeout) as scope:
                self.scope = scope
                await self._all()
            if self.stopped is not None:
                self._halt(self.nodes[self.stopped].name)
            elif scope.cancelled_caught:
                self._expire(timeout)
                return False
            return True
        finally:
            self.run_node = self.spawn = self.scope = self.ctx.scheduler = None

    def waiting(self, node: str, state: NodeState, wait: Wait) -> None:
        """Node ``node`` waits (``wait``): the observers are told; when every running node is
        in a wait of at least ``park_after`` seconds, a worker's run is parked: stopped, to be
        continued when due by whichever worker is free."""
        for observer in self.observers:
            observer.node_waiting(node, state, wait)
        ctx = self.ctx
        if ctx.park_after is not None and wait.seconds >= ctx.park_after:
            self.long += 1
            self._park_if_all_wait()

    def _park_if_all_wait(self) -> None:
        """Park the run (a worker's) when every running node is in a long wait."""
        ctx = self.ctx
        if self.long >= self.running and ctx.scope is not None and not ctx.parking:
            ctx.parking = True
            ctx.scope.cancel()

    def node_waits(self, node: str, wait: Wait) -> None:
        """Running node ``node`` (a wait or a sleep node) waits: see ``waiting``."""
        state = self.states[self.index[node]]
        assert state is not None
        self.waiting(node, state, wait)

    def woke(self, wait: Wait) -> None:
        """A wait that ``waiting`` was told of is over."""
        park_after = self.ctx.park_after
        if park_after is not None and wait.seconds >= park_after:
            self.long -= 1

    async def _all(self) -> None:
        try:
            async with task_group() as self.spawn:
                # The first ready node runs in this task, as code awaiting it would: a run of
                # one node (or of a chain) starts no task at all.
                first = self._settle(list(self.ready), follow=True)
                if first is not None:
                    await self._run(first)
        except BaseExceptionGroup as group:
            # Node code never raises Exception out of a node task; what gets here is a
            # BaseException (KeyboardInterrupt, SystemExit...): re-raise it as itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    def _start(self, i: int) -> None:
        if self.cap is not None and self.running >= self.cap:
            self.queue.append(i)
            return
        self.running += 1
        assert self.spawn is not None
        assert self.run_node is not None
        self.spawn(self.run_node, i)

    async def _run(self, i: int | None) -> None:
        """Run node i; then, while a node it released can run, run that one in this same task
        (the others get tasks of their own): a chain costs one task, not one per node."""
        ctx = self.ctx
        clock = ctx.clock
        turn = clock()  # when this task last let the loop run others
        while i is not None:
            pn = self.nodes[i]
            if self.parked and i in self.parked:  # resumed in a retry wait: the rest of it first
                state = self.states[i] = await self._unpark(self.parked.pop(i))
            else:
                state = self.states[i] = NodeState()
            start = clock()
            if (kind := pn.kind) == "map":
                await run_map(pn, self.results, state, ctx)
            else:
                try:
                    fn, args, kwargs = PREPARE[kind](pn, self.results)
                except InputError as exc:
                    state.attempts = 1
                    state.fail(exc)
                else:
                    await attempt(pn, fn, args, kwargs, state, ctx)
            end = clock()
            state.duration = end - start
            self.running -= 1
            i = self._finish(i, state)
            if self.queue or self.long:
                self._after(i)
            if i is not None and end - turn > YIELD_AFTER:
                await ctx.checkpoint()  # let the loop run others before the next node
                turn = clock()

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

    async def _unpark(self, parked: Parked) -> NodeState:
        """A node resumed in a retry wait: wait until its next attempt is due."""
        wait = parked.due - time.time()
        if wait > 0:
            await anyio.sleep(wait)
        return parked.state

    def _finish(self, i: int, state: NodeState) -> int | None:
        """Record node i, settle every dependent whose last dependency it was, and return one
        of them for this task to run next (or None)."""
        ready = self._note(i, state, None)
        return self._settle(ready, follow=True) if ready else None

    def _note(self, i: int, state: NodeState, ready: list[int] | None) -> list[int] | None:
        """Store node i's envelope and return ``ready`` plus the dependents it released (the
        list is made only when one is)."""
        pn = self.nodes[i]
        if self.observers:  # a durable run's writer stores it (group commit); events...
            for observer in self.observers:
                observer.node_finished(pn.name, state)
        self.results[pn.name] = state  # the state is its own envelope
        self.order.append(i)
        if self.fail_fast and state["status"] == "failure" and pn.raises and self.stopped is None:
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
                    self.handled.update(taken_failures(pn, self.states))
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

    def _expire(self, timeout: float | None) -> None:
        """The deadline passed: running nodes fail with TimeoutError, unstarted ones skip."""
        self._end_unfinished(
            f"the run timed out after {timeout:g}s before it started",
            lambda pn, state: {
                "type": "TimeoutError",
                "message": f"node {pn.name!r} was cancelled at attempt {state.attempts}: "
                f"the run timed out after {timeout:g}s",
            },
        )

    def _halt(self, failed: str) -> None:
        """fail_fast: node ``failed`` failed; running nodes fail with ``Cancelled``, unstarted
        ones skip, both with the reason naming it."""
        why = f"'{failed}' failed (fail_fast)"
        self._end_unfinished(
            why,
            lambda pn, state: {
                "type": "Cancelled",
                "message": f"node {pn.name!r} was cancelled at attempt {state.attempts}: node "
                f"{failed!r} failed and the workflow stops at its first failure (fail_fast)",
            },
            why,
        )

    def _end_unfinished(
        self,
        skipped: str,
        failure: Callable[[PlanNode, NodeState], dict[str, str]],
        reason: str | None = None,
    ) -> None:
        """End every node the run did not finish: a running one fails with ``failure``, one
        that never started skips with reason ``skipped``."""
        for pn in self.nodes:
            state = self.states[pn.index]
            if state is None:
                state = self.states[pn.index] = NodeState("skip", skipped, skipped)
            elif state.status is None:
                state.failed(failure(pn, state))
                state.reason = reason
            else:
                continue
            self._note(pn.index, state, None)

    def first_failure(self) -> NodeState | None:
        """The earliest failure of a raise node not taken by an on_failure handler (one that
        ran now, or one kept from before a resume: see ``_rules.taken_before``)."""
        for i in self.order:
            state = self.states[i]
            if (
                state is not None
                and state.status == "failure"
                and self.nodes[i].raises
                and i not in self.handled
                and not taken_before(self.nodes, self.pending, i)
            ):
                return state
        return None
