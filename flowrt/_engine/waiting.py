"""Compiling a wait or a sleep node: checking its settings and giving it the engine's function
(``_engine.signals``)."""

from __future__ import annotations

from typing import Any

from .._errors import DefinitionError
from .._nodes import AnyNode
from .payloads import check_schema
from .planned import PlanNode
from .signals import sleep_function, wait_function


def waiting_node(pn: PlanNode, node: AnyNode) -> dict[str, Any]:
    """A wait or a sleep node: its checked settings, and the engine's function (``pn.fn``);
    returns the inputs to bind it to.

    Raises:
        DefinitionError: a wait that retries or has an attempt timeout, a wait's timeout that
            is not above 0, a sleep with both or neither of ``seconds`` and ``until``.
    """
    policy, name = pn.policy, node.name
    if node.wait is not None:
        spec = pn.wait = node.wait
        if policy.max_retries or policy.timeout_seconds is not None:
            why = "a wait does not retry and has no attempt timeout: use timeout_seconds"
            raise DefinitionError(why, node=name, field="error_handling")
        limit = spec.timeout_seconds
        if limit is not None and (not isinstance(limit, int | float) or not limit > 0):
            why = f"must be a number of seconds above 0, got {limit!r}"
            raise DefinitionError(why, node=name, field="timeout_seconds")
        check_schema(spec.schema, name)
        pn.fn = wait_function(spec)
        return {}
    sleep = node.sleep
    assert sleep is not None
    if (sleep.seconds is None) == (sleep.until is None):
        raise DefinitionError("give exactly one of seconds and until", node=name, field="seconds")
    seconds = sleep.seconds
    if seconds is not None and (not isinstance(seconds, int | float) or not seconds >= 0):
        why = f"must be a number of seconds (at least 0), got {seconds!r}"
        raise DefinitionError(why, node=name, field="seconds")
    pn.fn = sleep_function(sleep)
    return {} if sleep.until is None else {"until": sleep.until}
