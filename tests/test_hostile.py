"""Input nobody wrote by hand: definitions, run inputs and selectors from hypothesis. A
definition raises nothing but ``DefinitionError``; a run never raises for its input, a selector
or a template: the failure becomes the failing node's ``InputError`` envelope."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flowrt import Condition, DefinitionError, ErrorHandling, Workflow

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
pieces = st.sampled_from(
    ["$", ".", "..", "[", "]", "(", ")", "?", "@", "*", ":", "0", "1", "-1", "'", '"', "input",
     "a", "b", "output", "==", "!=", "<", "~", "=~", "/x/", ",", " ", "{{", "}}", "{%", "%}",
     "|", " || ", "length", "foo(", "items", "status"]
)  # fmt: skip
fragments = st.lists(pieces, max_size=10).map("".join)
steps = st.sampled_from(
    [".x", ".items", "[0]", "[-1]", "[*]", "..x", "[1:3]", "[::2]", "[::0]", "[?(@.x > 1)]",
     "[?(@ > 1)]", "['x']", '["items"]', ".length()", "[0,1]", "[?(@.x =~ /a.*/)]", "..*"]
)  # fmt: skip
selectors = fragments.map(lambda text: "$" + text) | st.lists(steps, max_size=5).map(
    lambda parts: "$.input" + "".join(parts)
)
node_fields = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["a", "b", "c", "input", "1x", ""]) | st.text(max_size=4),
        "call": st.sampled_from(["json:dumps", "json:nope", "nope.mod:f", "math:floor"])
        | st.text(max_size=6),
        "depends": st.lists(st.sampled_from(["a", "b", "route.ok", "x.y.z"]) | json_values),
        "inputs": st.dictionaries(st.sampled_from(["obj", "x", "v"]), fragments | json_values),
        "error_handling": st.dictionaries(
            st.sampled_from(["behavior", "max_retries", "backoff_rate", "jitter", "retry_on"]),
            json_values | st.sampled_from(["raise", "return", "ValueError", "nope:X"]),
        ),
        "trigger": st.sampled_from(["all", "any", "on_failure", "sometimes"]) | json_values,
        "choice": st.dictionaries(
            st.sampled_from(["ok", "no"]),
            st.none()
            | st.fixed_dictionaries(
                {"path": selectors, "op": st.sampled_from(["==", "matches"])},
                optional={"value": json_values | fragments},
            )
            | st.dictionaries(st.sampled_from(["any", "all", "not"]), json_values),
        ),
        "map": st.dictionaries(st.sampled_from(["items", "concurrency"]), json_values | selectors),
        "loop": st.dictionaries(st.sampled_from(["max_loops", "on_max_loops"]), json_values),
        "executor": st.sampled_from(["thread", "process", "ray"]) | json_values,
    },
)
definitions = st.fixed_dictionaries(
    {"name": st.text(max_size=5) | json_values, "nodes": st.lists(node_fields, max_size=4)},
    optional={
        "output": st.dictionaries(st.text(max_size=3), fragments | selectors | json_values),
        "max_concurrency": json_values,
        "retry": st.dictionaries(st.sampled_from(["max_retries", "delay_seconds"]), json_values),
    },
)


@FUZZ
@given(data=definitions | json_values)
def test_from_dict_raises_only_definition_errors(data: Any) -> None:
    try:
        Workflow.from_dict(data)
    except DefinitionError as exc:
        message = str(exc)
    else:
        message = "valid"
    assert message  # a DefinitionError says where and what


@FUZZ
@given(text=st.binary(max_size=60) | st.text(max_size=60).map(str.encode))
def test_from_yaml_raises_only_definition_errors(tmp_path_factory: Any, text: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("yaml")) / "wf.yaml"
    path.write_bytes(text)
    with contextlib.suppress(DefinitionError):
        Workflow.from_yaml(path)


@pytest.mark.parametrize(
    "data",
    [
        {"name": "w", "nodes": [{"name": "a", "call": "json:dumps",
                                 "inputs": {"obj": "{{ x | nosuchfilter }}"}}]},
        {"name": "w", "nodes": [{"name": "a", "call": "json:dumps",
                                 "inputs": {"obj": "{% if x is nosuchtest %}{% endif %}"}}]},
        {"name": "w", "nodes": [{"name": "a", "call": "json:dumps", "inputs": {"obj": "$[@.x]1"}}]},
        {"name": "w", "nodes": [{"name": "r", "choice": {"ok": {"any": []}}}]},
        {"name": "w", "nodes": [{"name": "a", "call": "json:dumps",
                                 "inputs": {"obj": "$.input.items[::0]"}}]},
    ],
)  # fmt: skip
def test_the_reported_definitions_are_definition_errors(data: Any) -> None:
    with pytest.raises(DefinitionError):
        Workflow.from_dict(data)


def test_a_yaml_file_that_is_not_utf8_is_a_definition_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\nnodes: []\n".encode("latin-1"))
    with pytest.raises(DefinitionError, match="UTF-8"):
        Workflow.from_yaml(path)


def reader() -> Workflow:
    """Nodes that read the input every way there is."""
    wf = Workflow("reader", output={"all": "$..x", "first": "$.input.items[0] || none"})
    tolerant = ErrorHandling.ignore()
    echo = functools.partial(lambda **kw: kw)
    wf.node(echo, name="deep", inputs={"v": "$..x"}, error_handling=tolerant)
    wf.node(
        echo, name="filtered", inputs={"v": "$.input.items[?(@.x > 1)]"}, error_handling=tolerant
    )
    wf.node(echo, name="sliced", inputs={"v": "$.input.items[1:3]"}, error_handling=tolerant)
    wf.node(echo, name="template", inputs={"v": "{{ input }} {{ input.items | length }}"},
            error_handling=tolerant)  # fmt: skip
    wf.choice("route", {"big": Condition("$.input.n", ">", 3), "small": None})
    wf.map(lambda item: item, name="each", items="$.input.items", error_handling=tolerant)
    return wf


def nested(depth: int) -> Any:
    """A tree ``depth`` levels deep (as parsed JSON is: no shared parts)."""
    value: Any = {"x": 1}
    for _ in range(depth):
        value = {"x": value}
    return {"x": value, "items": [1, 2, 3], "n": 5}


@FUZZ
@given(data=json_values)
def test_no_run_input_makes_run_raise(data: Any) -> None:
    result = anyio.run(
        reader().run, {"items": data, "n": data} if not isinstance(data, dict) else data
    )
    assert result.status in ("success", "failure")


@pytest.mark.parametrize("depth", [100, 5_000])
@pytest.mark.anyio
async def test_a_deeply_nested_input_fails_nodes_not_the_run(depth: int) -> None:
    result = await reader().run(nested(depth))
    assert result.status in ("success", "failure")
    if depth == 5_000:
        assert result["deep"].error is not None
        assert result["deep"].error.type == "InputError"
        assert "nested too deep" in result["deep"].error.message


@FUZZ
@given(spec=selectors)
def test_a_selector_either_fails_validation_or_never_makes_run_raise(spec: str) -> None:
    wf = Workflow("selector")
    wf.node(lambda v: v, name="a", inputs={"v": spec.replace("$.a", "$.input")},
            error_handling=ErrorHandling.ignore())  # fmt: skip
    try:
        wf.validate()
    except DefinitionError:
        event("refused by validate")
        return
    event("run")
    for data in ({"items": [1, {"x": 2}], "x": None}, nested(50), {"items": "text"}):
        result = anyio.run(wf.run, data)
        assert result["a"].status in ("success", "failure")
        if result["a"].status == "failure":
            assert result["a"].error is not None
            assert result["a"].error.type == "InputError"
