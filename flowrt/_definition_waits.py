"""The builders of the nodes that wait for time or for someone: ``wait`` (a signal) and
``sleep`` (durable time), mixed into ``Definition``. Pure: recorded here, compiled by
``_engine.waiting``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._models import ErrorHandling
from ._nodes import AnyNode, Branch, Node, SleepSpec, Trigger, WaitSpec


class WaitingNodes:
    """``Definition``'s ``wait`` and ``sleep``."""

    if TYPE_CHECKING:  # the definition's own: it records the node

        def _add(self, node: AnyNode) -> AnyNode: ...

    def wait(
        self,
        name: str,
        *,
        signal: str | None = None,
        schema: Any = None,
        timeout_seconds: float | None = None,
        depends: Sequence[AnyNode | Branch | str] = (),
        error_handling: ErrorHandling | Mapping[str, Any] | None = None,
        trigger: Trigger = "all",
    ) -> AnyNode:
        """Add a node that waits for signal ``signal`` (``name`` by default) sent to the run
        (``signal``), at most ``timeout_seconds`` (then it fails with ``SignalTimeout``). Its
        output is the signal's payload, checked against ``schema`` (a pydantic model: its
        ``model_dump()``). A wait never retries."""
        node: AnyNode = Node(
            name,
            None,
            depends=depends,
            inputs=None,
            error_handling=error_handling,
            trigger=trigger,
            executor=None,
        )
        node.kind, node.wait = "wait", WaitSpec(signal or name, schema, timeout_seconds)
        return self._add(node)

    def sleep(
        self,
        name: str,
        *,
        seconds: float | None = None,
        until: Any = None,
        depends: Sequence[AnyNode | Branch | str] = (),
    ) -> AnyNode:
        """Add a node that sleeps ``seconds``, or until ``until`` (a selector or template
        giving ISO 8601 with a timezone, or epoch seconds; a time past completes at once). Its
        output is ``{"woke_at": "<ISO 8601 UTC>"}``."""
        node: AnyNode = Node(
            name,
            None,
            depends=depends,
            inputs=None,
            error_handling=None,
            trigger="all",
            executor=None,
        )
        node.kind, node.sleep = "sleep", SleepSpec(seconds, until)
        return self._add(node)
