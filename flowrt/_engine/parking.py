"""Waits in a running attempt: the scheduler tells the run's observers of a node's wait, and
parks a worker's run (stops it, to be continued when due by whichever worker is free) when
every running node is in a long wait."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .states import NodeState, RunState

if TYPE_CHECKING:
    from .observe import Observers, Wait
    from .planned import PlanNode


class Waits:
    """The scheduler's waits (a mixin of ``Scheduler``, whose state they read)."""

    __slots__ = ("long",)
    long: int  # running nodes in a wait of at least ``ctx.park_after`` seconds

    if TYPE_CHECKING:  # the scheduler's own
        ctx: RunState
        observers: Observers
        running: int
        index: dict[str, int]
        nodes: list[PlanNode]
        states: list[NodeState | None]

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
