from __future__ import annotations

from typing import Any

import pytest

from flowrt import Condition

DATA: dict[str, Any] = {
    "input": {},
    "a": {
        "status": "success",
        "output": {"score": 0.7, "tags": ["x", "y"], "label": "spam"},
        "error": None,
    },
}
KNOWN = {"input", "a"}


def holds(condition: Any) -> bool:
    return bool(condition.compile(KNOWN)(DATA))


@pytest.mark.parametrize(
    ("path", "op", "value", "expected"),
    [
        ("$.a.status", "==", "success", True),
        ("$.a.status", "!=", "success", False),
        ("$.a.output.score", "<", 0.8, True),
        ("$.a.output.score", "<=", 0.7, True),
        ("$.a.output.score", ">", 0.7, False),
        ("$.a.output.score", ">=", 0.7, True),
        ("$.a.output.label", "in", ["spam", "ham"], True),
        ("$.a.output.label", "not_in", ["spam", "ham"], False),
        ("$.a.output.tags", "contains", "y", True),
        ("$.a.output.tags", "contains", "z", False),
        ("$.a.output.score", "exists", None, True),
        ("$.a.output.missing", "exists", None, False),
        ("$.a.output.missing", "not_exists", None, True),
        ("$.a.error", "not_exists", None, True),
    ],
)
def test_operators(path: str, op: Any, value: Any, expected: bool) -> None:
    assert holds(Condition(path, op, value)) is expected


def test_a_comparison_that_cannot_be_made_does_not_hold() -> None:
    assert holds(Condition("$.a.output.missing", ">", 3)) is False
    assert holds(Condition("$.a.output.label", "<", 3)) is False


def test_combinators() -> None:
    spam = Condition("$.a.output.label", "==", "spam")
    low = Condition("$.a.output.score", "<", 0.5)
    assert holds(spam & ~low)
    assert not holds(spam & low)
    assert holds(low | spam)
    assert not holds(~(low | spam))


def test_compiled_conditions_name_the_nodes_they_read() -> None:
    compiled: Any = (Condition("$.a.status", "==", "x") | Condition("$.input.k", "exists")).compile(
        KNOWN
    )
    assert compiled.names == {"a", "input"}
