"""Resuming a run from its stored records, as a pure computation: which nodes are finished and
kept, which were parked in a retry wait, and the dependency counts the scheduler starts from.

The rules, all here:
- a node stored as ``success`` is finished: its stored envelope (output, attempts, trace) is
  kept, it never runs again and no finish ever releases it again;
- a node stored as ``waiting`` (in a retry wait) continues at its next attempt, with the
  retries it has left, once its due time has come (one waiting for its turn under a rate limit,
  ``throttled``, starts it then without taking other permits); a wait or sleep node stored
  ``waiting`` is decided again (the store keeps its due time and its signal);
- every other node (failed, skipped, never recorded, running at the crash) is decided again,
  once all its dependencies have finished in this attempt or before it;
- a node that fails again is handled (does not fail the run) when an ``on_failure`` handler
  of it is kept: that handler took its failure before the resume (``_rules.taken_before``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .._store.records import RunRow, trace_of
from .planned import Plan
from .states import NodeState


@dataclass(slots=True)
class Parked:
    """A node stored in a retry wait: its record so far, and when its next attempt is due
    (wall clock)."""

    state: NodeState
    due: float


@dataclass(slots=True)
class Restart:
    """Where a resumed attempt starts: ``seeds`` are the kept nodes' records by plan index,
    ``parked`` the nodes to continue, ``pending`` each node's count of unfinished
    dependencies (negative for a kept node: it can never reach zero), ``ready`` the nodes
    that can start at once."""

    seeds: dict[int, NodeState]
    parked: dict[int, Parked]
    pending: list[int]
    ready: list[int]


KEPT = -1  # the pending count of a kept node: finishes only ever decrement it, never to zero


def restart(plan: Plan, run: RunRow) -> Restart:
    """The restart state of ``plan`` from stored ``run`` (its current attempt's records)."""
    seeds: dict[int, NodeState] = {}
    parked: dict[int, Parked] = {}
    for row in run.nodes:
        index = plan.index.get(row.name)
        if index is None:
            continue
        if row.status == "success":
            state = NodeState().succeed(None if row.output is None else json.loads(row.output))
        elif (
            row.status == "waiting"
            and row.due is not None
            and plan.nodes[index].kind not in ("wait", "sleep")
        ):
            state = NodeState()  # in a retry wait (a wait or sleep node is decided again)
        else:
            continue
        state.attempts, state.duration = row.attempts, row.duration
        state.trace = trace_of(row.trace, row.duration)
        state.permit = row.reason == "throttled"  # parked in its turn: its permits are taken
        if state.status is None:
            parked[index] = Parked(state, row.due or 0.0)
        else:
            seeds[index] = state
    pending, ready = counts(plan, seeds)
    return Restart(seeds, parked, pending, ready)


def counts(plan: Plan, kept: Sequence[int] | dict[int, NodeState]) -> tuple[list[int], list[int]]:
    """Each node's count of dependencies still to finish when the nodes in ``kept`` are
    finished already (``KEPT`` for those), and the nodes ready at once, in plan order."""
    pending = [len(pn.deps) for pn in plan.nodes]
    for i in kept:
        for dependent in plan.nodes[i].dependents:
            pending[dependent] -= 1
    for i in kept:
        pending[i] = KEPT
    return pending, [i for i, count in enumerate(pending) if count == 0]
