"""The contract's rules about dependencies, pure: whether a dependency blocks a node, whether a
node's trigger lets it run, which failures an ``on_failure`` handler takes. Nothing here
changes state; the scheduler asks and acts.

- A dependency blocks when it finished with ``failure`` or ``skip`` and its behavior is
  ``raise`` (the seed rule: a ``return`` node never blocks), or when it is a Choice branch
  that was not taken.
- ``all`` runs unless a dependency blocks; ``any`` runs if a dependency succeeded (or there
  are none); ``always`` runs; ``on_failure`` runs if a dependency failed, and takes those
  failures (they no longer fail the run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .planned import PlanNode
    from .states import NodeState

Skip = tuple[str, str]  # (the reason a node skips, the root cause carried down a cascade)
NO_SUCCESS: Skip = ("no dependency succeeded", "no dependency succeeded")
NO_FAILURE: Skip = ("no dependency failed", "no dependency failed")


def blocked_by(
    pn: PlanNode, nodes: Sequence[PlanNode], states: Sequence[NodeState | None]
) -> Skip | None:
    """Why ``pn`` must skip under its trigger (its reason and root cause), or None if it
    runs. Every dependency of ``pn`` has finished (``states[dep]`` is set)."""
    trigger = pn.trigger
    if trigger == "always":
        return None
    blocker = None
    succeeded = failed = False
    for dep, option in pn.edges:
        record, upstream = states[dep], nodes[dep]
        assert record is not None
        status = record.status
        if option is not None and (status != "success" or record.output != option):
            status = "skip"
            why = f"branch '{upstream.name}.{option}' was not taken"
            blocker = blocker or (why, why)
        elif status == "failure" and upstream.raises:
            why = f"'{upstream.name}' failed"
            blocker = blocker or (why, why)
        elif status == "skip" and upstream.raises:
            cause = record.cause or ""
            blocker = blocker or (f"'{upstream.name}' was skipped ({cause})", cause)
        succeeded |= status == "success"
        failed |= status == "failure"
    if trigger == "all":
        return blocker
    if trigger == "any":
        return None if succeeded or not pn.edges else NO_SUCCESS
    return None if failed else NO_FAILURE


def taken_failures(pn: PlanNode, states: Sequence[NodeState | None]) -> list[int]:
    """The failed dependencies an ``on_failure`` node that runs takes (none for others)."""
    if pn.trigger != "on_failure":
        return []
    return [dep for dep, _ in pn.edges if (r := states[dep]) is not None and r.status == "failure"]


def taken_before(nodes: Sequence[PlanNode], pending: Sequence[int], i: int) -> bool:
    """Whether node ``i``'s failure was taken by an ``on_failure`` handler kept from before a
    resume (a kept node's pending count is negative: see ``_resume``)."""
    return any(nodes[d].trigger == "on_failure" and pending[d] < 0 for d in nodes[i].dependents)
