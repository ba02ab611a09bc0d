"""flowrt's errors carry their facts as attributes and build their messages from them."""

from __future__ import annotations

import pytest

from flowrt import (
    FlowError,
    InputError,
    LeaseLost,
    MaxLoopsExceeded,
    NoMatch,
    OutputError,
    RunInProgress,
    StrayCancellation,
    TooManyFailures,
)


@pytest.mark.parametrize(
    ("error", "facts", "message"),
    [
        (TooManyFailures("charge", 3, 10, 2), {"node": "charge", "failed": 3, "total": 10,
         "tolerated": 2}, "map 'charge': 3 of 10 items failed, more than the 2 tolerated"),
        (MaxLoopsExceeded("agent", 15), {"node": "agent", "limit": 15},
         "Agent 'agent' has reached the maximum loop limit of 15 without finding a final answer"),
        (NoMatch("route"), {"node": "route"},
         "Choice 'route': no option matched and it has no default option"),
        (OutputError("n", "NaN"), {"node": "n", "reason": "NaN"},
         "node 'n': its output cannot be stored as JSON: NaN"),
        (InputError("no value", node="n", field="x"), {"node": "n", "field": "x",
         "reason": "no value"}, "node 'n': no value"),
        (StrayCancellation("n"), {"node": "n"}, "node 'n': its function raised CancelledError"),
        (RunInProgress("r1", "host:1:ab"), {"run_id": "r1", "owner": "host:1:ab"},
         "run 'r1' is being executed by host:1:ab: its owner's lease is live"),
        (LeaseLost("r1"), {"run_id": "r1"}, "run 'r1' was taken over by another owner"),
    ],
)  # fmt: skip
def test_errors_carry_their_facts(error: FlowError, facts: dict[str, object], message: str) -> None:
    assert {name: getattr(error, name) for name in facts} == facts
    assert str(error).startswith(message)
    assert isinstance(error, FlowError)


def test_lease_lost_is_a_run_in_progress() -> None:
    assert isinstance(LeaseLost("r"), RunInProgress)
