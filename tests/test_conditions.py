from __future__ import annotations

from typing import Any

import pytest

from flowrt import Condition, DefinitionError

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


@pytest.mark.parametrize(
    ("op", "value", "found", "holds"),
    [
        ("startswith", "ord-", "ord-42", True),
        ("startswith", "ord-", "inv-42", False),
        ("startswith", "ord-", 42, False),
        ("endswith", ".pdf", "a.pdf", True),
        ("endswith", ".pdf", "a.txt", False),
        ("matches", r"^\d{3}-\d{4}$", "555-0199", True),
        ("matches", r"\d+", "no digits", False),
        ("matches", r"\d+", None, False),
    ],
)
def test_string_operators(op: Any, value: Any, found: Any, holds: bool) -> None:
    test = Condition("$.a.output", op, value).compile({"a"})
    assert test({"a": {"output": found}}) is holds


@pytest.mark.parametrize(
    ("op", "value", "reason"),
    [
        ("matches", "(unclosed", "invalid regular expression"),
        ("matches", 5, "needs a regular expression string"),
        ("startswith", 5, "needs a string value"),
    ],
)
def test_bad_string_operands_are_definition_errors(op: Any, value: Any, reason: str) -> None:
    with pytest.raises(DefinitionError, match=reason):
        Condition("$.a.output", op, value).compile({"a"})


@pytest.mark.anyio
async def test_a_loop_stops_at_15_steps_by_default() -> None:
    from flowrt import Workflow

    steps: list[int] = []
    wf = Workflow("endless")

    @wf.loop
    async def agent(state: Any) -> Any:
        steps.append(1)
        return state

    result = await wf.run()
    assert len(steps) == 15
    assert result["agent"].error is not None
    assert result["agent"].error.type == "MaxLoopsExceeded"
