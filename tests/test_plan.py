"""Definitions: what validate() accepts and the DefinitionError it raises otherwise."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from flowrt import Condition, DefinitionError, ErrorHandling, Node, Workflow


async def noop() -> None:
    return None


def test_node_works_bare_called_and_as_plain_call() -> None:
    wf = Workflow("forms")

    @wf.node
    async def bare() -> int:
        return 1

    @wf.node(name="called", depends=[bare])
    async def _called() -> int:
        return 2

    plain = wf.node(noop, name="plain", depends=["called"])
    keyword = wf.node(fn=noop, name="keyword", depends=[plain])
    assert isinstance(bare, Node)
    assert isinstance(keyword, Node)
    assert isinstance(plain, Node)
    assert list(wf.nodes) == ["bare", "called", "plain", "keyword"]
    wf.validate()


@pytest.mark.anyio
async def test_a_node_of_another_workflow_stands_for_its_function() -> None:
    first = Workflow("first")

    @first.node
    async def double(x: int) -> int:
        return 2 * x

    second = Workflow("second")
    again = second.node(double, inputs={"x": "$.input.x"})
    as_map = second.map(double, name="each", items=[1, 2], depends=[again])
    assert again.fn is as_map.fn is double.fn  # the async function itself, not a sync wrapper
    result = await second.run({"x": 4})
    assert result.nodes["double"].output == 8
    assert [item["output"] for item in result.nodes["each"].output] == [2, 4]


def test_unknown_dependency_names_node_and_field() -> None:
    wf = Workflow("w")
    wf.node(noop, name="a", depends=["ghost"])
    with pytest.raises(DefinitionError, match="ghost") as info:
        wf.validate()
    assert (info.value.node, info.value.field) == ("a", "depends")


def test_duplicate_name() -> None:
    wf = Workflow("w")
    wf.node(noop, name="a")
    wf.node(noop, name="a")
    with pytest.raises(DefinitionError, match="duplicate") as info:
        wf.validate()
    assert info.value.node == "a"


def test_input_is_a_reserved_name() -> None:
    wf = Workflow("w")
    wf.node(noop, name="input")
    with pytest.raises(DefinitionError, match="reserved"):
        wf.validate()


@pytest.mark.parametrize("name", ["1abc", "has space", "dot.ted", ""])
def test_invalid_names(name: str) -> None:
    wf = Workflow("w")
    wf.node(noop, name=name)
    with pytest.raises(DefinitionError, match="invalid name"):
        wf.validate()


def test_a_lambda_needs_a_name() -> None:
    wf = Workflow("w")
    wf.node(lambda: 1)
    with pytest.raises(DefinitionError, match="pass name="):
        wf.validate()


def test_cycle_is_reported_with_its_path() -> None:
    wf = Workflow("w")
    wf.node(noop, name="start")
    wf.node(noop, name="a", depends=["start", "c"])
    wf.node(noop, name="b", depends=["a"])
    wf.node(noop, name="c", depends=["b"])
    with pytest.raises(
        DefinitionError, match=r"cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)"
    ):
        wf.validate()


def test_self_dependency_through_a_selector_is_a_cycle() -> None:
    wf = Workflow("w")
    wf.node(noop, name="a")
    wf.node(lambda x: x, name="me", inputs={"x": "$.me.output"})
    with pytest.raises(DefinitionError, match="cycle: me -> me"):
        wf.validate()


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"trigger": "sometimes"}, "trigger", "sometimes"),
        ({"executor": "gpu"}, "executor", "gpu"),
        (
            {"error_handling": {"max_retries": -2}},
            "error_handling.max_retries",
            "must be >= 0",
        ),
        ({"error_handling": {"backoff_rate": 0.9}}, "error_handling.backoff_rate", "1"),
        ({"error_handling": {"jitter": 2}}, "error_handling.jitter", "must be <= 1"),
        (
            {"error_handling": {"timeout_seconds": -1}},
            "error_handling.timeout_seconds",
            "must be > 0",
        ),
        ({"error_handling": "fast"}, "error_handling", "ErrorHandling or a dict"),
        ({"inputs": {"nope": 1}}, "inputs.nope", "not a parameter"),
        ({"inputs": {"x": "$.ghost.output"}}, "inputs.x", "unknown node 'ghost'"),
        ({"inputs": {"x": "$.a.output["}}, "inputs.x", "malformed selector"),
        ({"inputs": {"x": "{{ a.output"}}, "inputs.x", "syntax error"),
    ],
)
def test_bad_node_fields_name_node_and_field(
    options: dict[str, Any], field: str, message: str
) -> None:
    wf = Workflow("w")
    wf.node(noop, name="a")

    async def target(x: int = 0) -> int:
        return x

    wf.node(target, name="t", **options)
    with pytest.raises(DefinitionError, match=message) as info:
        wf.validate()
    assert (info.value.node, info.value.field) == ("t", field)
    assert "'t'" in str(info.value)
    assert field in str(info.value)


def test_process_executor_needs_a_sync_function() -> None:
    wf = Workflow("w")
    wf.node(noop, executor="process")
    with pytest.raises(DefinitionError, match="sync"):
        wf.validate()


def test_a_node_of_another_workflow_is_an_unknown_dependency() -> None:
    other = Workflow("other")
    foreign = other.node(noop, name="a")
    wf = Workflow("w")
    wf.node(noop, name="a")
    wf.node(noop, name="b", depends=[foreign])
    with pytest.raises(DefinitionError, match="another workflow"):
        wf.validate()


def test_max_concurrency_must_be_positive() -> None:
    wf = Workflow("w", max_concurrency=0)
    wf.node(noop)
    with pytest.raises(DefinitionError, match="max_concurrency"):
        wf.validate()


def test_choice_default_must_be_last() -> None:
    wf = Workflow("w")
    wf.node(noop, name="a")
    wf.choice("route", {"fallback": None, "ok": Condition("$.a.status", "==", "success")})
    with pytest.raises(DefinitionError, match="must be last") as info:
        wf.validate()
    assert (info.value.node, info.value.field) == ("route", "options.fallback")


def test_branch_of_a_missing_option() -> None:
    wf = Workflow("w")
    wf.node(noop, name="a")
    route = wf.choice("route", {"ok": Condition("$.a.status", "==", "success")})
    wf.node(noop, name="b", depends=[route["nope"]])
    with pytest.raises(DefinitionError, match="no option 'nope'") as info:
        wf.validate()
    assert info.value.node == "b"


def test_unknown_condition_operator() -> None:
    wf = Workflow("w")
    wf.node(noop, name="a")
    wf.choice("route", {"ok": Condition("$.a.status", "~=", "x")})  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="unknown operator '~='"):
        wf.validate()


def test_plan_is_cached_until_a_node_is_added() -> None:
    wf = Workflow("w")
    wf.node(noop, name="a")
    plan = wf.compiled()
    assert wf.compiled() is plan
    wf.node(noop, name="b")
    assert wf.compiled() is not plan


def test_partial_with_a_name_is_accepted() -> None:
    def add(x: int, y: int) -> int:
        return x + y

    wf = Workflow("w")
    wf.node(functools.partial(add, y=2), name="add")
    assert wf.run_sync({"x": 1})["add"].output == 3


def test_run_validates_first() -> None:
    wf = Workflow("w")
    wf.node(noop, depends=["ghost"])
    with pytest.raises(DefinitionError):
        wf.run_sync()


def test_error_handling_given_as_dict_is_accepted() -> None:
    wf = Workflow("w")
    wf.node(noop, error_handling={"behavior": "return", "max_retries": 2})
    assert wf.compiled().nodes[0].policy == ErrorHandling(behavior="return", max_retries=2)


@pytest.mark.parametrize(
    ("kind", "options", "field"),
    [
        ("map", {"items": "$.input.xs", "concurrency": 0}, "concurrency"),
        ("map", {"items": 5}, "items"),
        ("map", {"items": "$.input.xs[", "concurrency": 2}, "items"),
        ("map", {"items": "$.input.xs", "tolerated_failures": 1.5}, "tolerated_failures"),
        ("map", {"items": "$.input.xs", "tolerated_failures": -1}, "tolerated_failures"),
        ("loop", {"max_loops": 0}, "max_loops"),
        ("loop", {"max_loops": 3, "on_max_loops": "ignore"}, "on_max_loops"),
    ],
)
def test_bad_map_and_loop_settings(kind: str, options: dict[str, Any], field: str) -> None:
    wf = Workflow("w")

    async def fn(item: Any) -> Any:
        return item

    getattr(wf, kind)(fn, name="k", **options)
    with pytest.raises(DefinitionError) as info:
        wf.validate()
    assert (info.value.node, info.value.field) == ("k", field)


def test_generator_functions_are_refused() -> None:
    async def agen() -> Any:
        yield 1

    def gen() -> Any:
        yield 1

    for fn in (agen, gen):
        wf = Workflow("w")
        wf.node(fn)
        with pytest.raises(DefinitionError, match="generator function") as info:
            wf.validate()
        assert info.value.field == "fn"


@pytest.mark.anyio
async def test_changing_the_output_after_a_run_takes_effect() -> None:
    wf = Workflow("late-output")
    wf.node(lambda: 1, name="one")
    assert (await wf.run()).output == {"one": 1}
    wf.output = {"value": "$.one.output"}
    assert (await wf.run()).output == {"value": 1}


@pytest.mark.anyio
async def test_a_bad_setting_after_validate_is_refused_by_the_next_run() -> None:
    wf = Workflow("late-cap")
    wf.node(lambda: 1, name="one")
    wf.validate()
    wf.max_concurrency = 0
    with pytest.raises(DefinitionError, match="max_concurrency: must be an int >= 1, got 0"):
        await wf.run()


@pytest.mark.anyio
async def test_changing_a_node_after_a_run_takes_effect() -> None:
    wf = Workflow("late-node")
    node = wf.node(lambda x: x, name="echo", inputs={"x": "first"})
    assert (await wf.run())["echo"].output == "first"
    node.inputs = {"x": "second"}
    assert (await wf.run())["echo"].output == "second"


@pytest.mark.anyio
async def test_a_run_writes_nothing_into_its_plan() -> None:
    import dataclasses

    from flowrt import ErrorHandling

    wf = Workflow("read-only-plan")

    @wf.node(error_handling=ErrorHandling(max_retries=2, retry_interval_seconds=0))
    async def flaky() -> int:
        raise RuntimeError("always")

    wf.node(lambda: 2, name="sync", executor="thread")
    plan = wf.compiled()

    def snapshot() -> list[tuple[Any, ...]]:
        return [
            tuple((f.name, id(getattr(pn, f.name))) for f in dataclasses.fields(pn))
            for pn in plan.nodes
        ]

    before = snapshot()
    await wf.run()
    await wf.run()
    assert snapshot() == before
    assert wf.compiled() is plan  # nothing changed: the same plan serves every run


def test_a_decorated_node_is_still_its_function() -> None:
    import inspect

    import anyio

    wf = Workflow("callable")

    @wf.node
    async def double(x: int, *, factor: int = 2) -> int:
        """Double it."""
        return x * factor

    @wf.node(depends=[double])
    def shout(text: str) -> str:
        return text.upper()

    assert isinstance(double, Node)
    assert anyio.run(double, 4) == 8  # a unit test calls it directly
    assert shout("hi") == "HI"
    assert str(inspect.signature(double)) == "(x: 'int', *, factor: 'int' = 2) -> 'int'"
    assert (double.__name__, double.__doc__) == ("double", "Double it.")
    route = wf.choice("route", {"any": None})
    with pytest.raises(TypeError, match="has no function"):
        route()
