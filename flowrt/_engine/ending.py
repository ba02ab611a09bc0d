"""How a run attempt's unfinished nodes end, and which failure fails it: the scheduler's rules
for its deadline (``_expire``), for fail_fast (``_halt``) and for the run's error
(``first_failure``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .rules import taken_before
from .states import NodeState

if TYPE_CHECKING:
    from .planned import PlanNode


class Ending:
    """The scheduler's ending rules (a mixin of ``Scheduler``, whose state they read)."""

    __slots__ = ()

    if TYPE_CHECKING:  # the scheduler's own
        nodes: list[PlanNode]
        states: list[NodeState | None]
        failures: list[int]
        handled: set[int]
        pending: list[int]

        def _note(self, i: int, state: NodeState, ready: list[int] | None) -> list[int] | None: ...

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
        ran now, or one kept from before a resume: see ``_rules.taken_before``), among the raise
        nodes that failed in this attempt, in the order their failures were noted."""
        for i in self.failures:
            state = self.states[i]
            if i not in self.handled and not taken_before(self.nodes, self.pending, i):
                return state
        return None
