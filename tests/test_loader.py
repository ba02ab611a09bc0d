"""Workflows as data: from_dict / from_yaml / to_dict, and errors that name their place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from flowrt import DefinitionError, ErrorHandling, Workflow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
YAML_EXAMPLES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.fixture(autouse=True)
def examples_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_every_python_example_has_a_yaml_twin() -> None:
    apps = {"fastapi_app", "approval", "onboarding"}  # apps and worker stories
    python = {p.stem for p in EXAMPLES.glob("*.py")} - apps
    assert {p.stem for p in YAML_EXAMPLES} == python


@pytest.mark.parametrize("path", YAML_EXAMPLES, ids=lambda p: p.name)
def test_yaml_round_trip(path: Path) -> None:
    wf = Workflow.from_yaml(path)
    data = wf.to_dict()
    again = Workflow.from_dict(yaml.safe_load(yaml.safe_dump(data, sort_keys=False)))
    assert again.to_dict() == data
    assert list(again.nodes) == list(wf.nodes)


def test_a_yaml_workflow_runs_like_its_python_twin() -> None:
    import fallback_choice

    from_file = Workflow.from_yaml(EXAMPLES / "fallback_choice.yaml")
    for down in (False, True):
        data = {"query": "q", "primary_down": down}
        assert from_file.run_sync(data).output == fallback_choice.wf.run_sync(data).output


def test_a_python_workflow_round_trips_through_data() -> None:
    import demo

    data = demo.wf.to_dict()
    assert Workflow.from_dict(data).to_dict() == data
    assert data["nodes"][0]["call"] == "demo:fetch_price"
    assert data["nodes"][2]["choice"]["cached"] is None


def test_conditions_combine_in_files() -> None:
    wf = Workflow.from_dict(
        {
            "name": "combined",
            "nodes": [
                {"name": "a", "call": "builtins:dict", "inputs": {"n": "$.input.n"}},
                {
                    "name": "route",
                    "choice": {
                        "mid": {
                            "all": [
                                {"path": "$.a.output.n", "op": ">", "value": 1},
                                {"not": {"path": "$.a.output.n", "op": ">=", "value": 5}},
                            ]
                        },
                        "edge": {
                            "any": [
                                {"path": "$.a.output.n", "op": "<=", "value": 1},
                                {"path": "$.a.output.n", "op": "exists"},
                            ]
                        },
                    },
                },
            ],
        }
    )
    assert [wf.run_sync({"n": n})["route"].output for n in (3, 7, 0)] == ["mid", "edge", "edge"]


def test_retry_on_names_exceptions() -> None:
    wf = Workflow.from_dict(
        {
            "name": "w",
            "nodes": [
                {
                    "name": "a",
                    "call": "builtins:dict",
                    "error_handling": {"retry_on": ["ConnectionError", "flowrt:InputError"]},
                }
            ],
        }
    )
    policy = wf.nodes["a"].error_handling
    assert isinstance(policy, ErrorHandling)
    import flowrt

    assert policy.retry_on == (ConnectionError, flowrt.InputError)


def node(**fields: Any) -> dict[str, Any]:
    return {
        "name": "w",
        "nodes": [
            {"name": "a", "call": "builtins:dict"},
            {"name": "b", "call": "builtins:dict"},
            fields,
        ],
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            node(name="c", call="builtins:dict", error_handling={"backoff_rate": 0.5}),
            "nodes[2].error_handling.backoff_rate: must be >= 1 (got 0.5)",
        ),
        (
            node(name="c", call="builtins:dict", colour="red"),
            "nodes[2].colour: is not a known field",
        ),
        (
            node(name="c", call="no_such_module:fn"),
            "nodes[2].call: cannot import module 'no_such_module'",
        ),
        (
            node(name="c", call="json:no_such_fn"),
            "nodes[2].call: module 'json' has no attribute 'no_such_fn'",
        ),
        (
            node(name="c", call="not a reference"),
            "nodes[2].call: must be a reference 'package.module:name'",
        ),
        (node(name="c"), "nodes[2]: Value error, a node has one of `call`, `choice`, `wait`"),
        (
            node(name="c", call="builtins:dict", depends=["ghost"]),
            "nodes[2].depends: unknown dependency 'ghost' (node 'c')",
        ),
        (
            node(name="c", call="builtins:dict", inputs={"x": "$.ghost.output"}),
            "nodes[2].inputs.x: selector '$.ghost.output' names unknown node 'ghost'",
        ),
        (
            node(name="c", call="builtins:dict", map={"items": "$.input.x", "concurrency": 0}),
            "nodes[2].map.concurrency: must be >= 1",
        ),
        (
            node(name="c", call="builtins:dict", loop={"max_loops": 0}),
            "nodes[2].loop.max_loops: must be >= 1",
        ),
        (
            node(name="c", call="builtins:dict", error_handling={"retry_on": ["NotAnError"]}),
            "nodes[2].error_handling.retry_on[0]: 'NotAnError' is not an exception class",
        ),
        (node(name="c", call="builtins:dict", trigger="sometimes"), "nodes[2].trigger: must be"),
        (node(name="a", call="builtins:dict"), "nodes[0].name: duplicate node name (node 'a')"),
        ({"name": "w", "nodes": []}, "nodes: List should have at least 1 item"),
        ({"nodes": [{"name": "a", "call": "builtins:dict"}]}, "name: is required"),
    ],
)
def test_bad_files_name_the_place(data: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        Workflow.from_dict(data)
    assert str(info.value).startswith(message), str(info.value)


def test_unreadable_and_malformed_yaml(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read"):
        Workflow.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnodes: [\n  - {a: 1\n")
    with pytest.raises(DefinitionError, match="not valid YAML at line"):
        Workflow.from_yaml(bad)


def test_lambdas_and_callable_conditions_have_no_data_form() -> None:
    wf = Workflow("w")
    wf.node(lambda: 1, name="a")
    with pytest.raises(DefinitionError, match="no importable name"):
        wf.to_dict()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (5, "file: must be a mapping (got 5)"),
        ({"name": "w", "nodes": [5]}, "nodes[0]: must be a mapping (got 5)"),
        ({"name": "w", "nodes": [{"name": "a", "call": "bad ref"}]},
         "nodes[0].call: must be a reference 'package.module:name' (got 'bad ref')"),
        ({"name": 3, "nodes": []}, "name: must be a string (got 3)"),
    ],
)  # fmt: skip
def test_file_errors_speak_of_the_file_not_of_pydantic(data: Any, says: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        Workflow.from_dict(data)
    assert str(raised.value) == says
    for internal in ("WorkflowFile", "NodeFile", "Input should", "^[A-Za-z"):
        assert internal not in str(raised.value)


def test_the_limits_file_is_the_python_example() -> None:
    import limits

    from_file = Workflow.from_yaml(EXAMPLES / "limits.yaml")
    assert from_file.to_dict() == limits.sync.to_dict()
