"""A wait's payload schema as a JSON Schema dict: payloads are checked by it (the field at
fault named, nothing kept), it round-trips through YAML inline, and an invalid schema is a
DefinitionError. Compared against jsonschema itself on fuzzed payloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import flowrt
from flowrt import DefinitionError, InputError, Workflow
from flowrt._engine.payloads import json_schema, validated

pytestmark = pytest.mark.anyio

APPROVAL = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "by": {"type": "string", "minLength": 1},
        "note": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
    "required": ["approved", "by"],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def gated_wait(schema: Any) -> tuple[Workflow, anyio.Event]:
    wf = Workflow("schema_wait")
    gate = anyio.Event()

    @wf.node()
    async def hold() -> None:
        await gate.wait()

    wf.wait("approve", signal="approval", schema=schema, depends=[hold])
    return wf, gate


async def test_a_json_schema_payload_is_the_wait_output_and_a_bad_one_names_its_field() -> None:
    wf, gate = gated_wait(APPROVAL)
    results: list[flowrt.RunResult] = []

    async def go() -> None:
        results.append(await wf.run(run_id="js1"))

    async with anyio.create_task_group() as group:
        group.start_soon(go)
        while flowrt._engine.signals.mailbox_of("js1") is None:
            await anyio.sleep(0.01)
        with pytest.raises(InputError) as info:
            await wf.signal("js1", "approval", {"approved": True, "by": ""})
        assert info.value.field == "payload.by"
        with pytest.raises(InputError) as missing:
            await wf.signal("js1", "approval", {"approved": True})
        assert missing.value.field == "payload"
        assert "'by'" in str(missing.value)
        with pytest.raises(InputError) as deep:
            await wf.signal("js1", "approval", {"approved": 1, "by": "a", "note": {"text": 3}})
        assert deep.value.field in ("payload.approved", "payload.note.text")
        sent = await wf.signal("js1", "approval", {"approved": True, "by": "ana"})
        assert sent.seq == 1  # the refused sends kept nothing
        gate.set()
    assert results[0]["approve"].output == {"approved": True, "by": "ana"}


PAYLOADS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["approved", "by", "note", "text"]), inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(PAYLOADS)
def test_payloads_pass_exactly_when_jsonschema_says_they_are_valid(payload: Any) -> None:
    reference = Draft202012Validator(APPROVAL).is_valid(payload)
    if reference:
        assert validated(APPROVAL, "approval", payload) == payload
        return
    with pytest.raises(InputError) as info:
        validated(APPROVAL, "approval", payload)
    assert str(info.value.field).startswith("payload")


def test_an_inline_json_schema_round_trips_through_a_yaml_file(tmp_path: Path) -> None:
    data = {
        "name": "inline",
        "nodes": [{"name": "approve", "wait": {"signal": "approval", "schema": APPROVAL}}],
    }
    path = tmp_path / "inline.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    loaded = Workflow.from_yaml(path)
    loaded.validate()
    assert loaded.nodes["approve"].wait is not None
    assert loaded.nodes["approve"].wait.schema == APPROVAL
    assert loaded.to_dict()["nodes"][0]["wait"] == data["nodes"][0]["wait"]  # type: ignore[index]
    path.write_text(yaml.safe_dump(loaded.to_dict()), encoding="utf-8")
    assert Workflow.from_yaml(path).to_dict() == loaded.to_dict()


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "objekt"}, "not a valid JSON Schema"),
        ({"required": "by"}, "not a valid JSON Schema"),
        ({"minimum": float("inf")}, "not JSON"),
        ("pkg.mod:Model", "pydantic model or a JSON Schema dict"),
    ],
)
def test_an_invalid_schema_is_a_definition_error_naming_the_node(schema: Any, why: str) -> None:
    wf = Workflow("bad_schema")
    wf.wait("approve", schema=schema)
    with pytest.raises(DefinitionError, match=why) as info:
        wf.validate()
    assert (info.value.node, info.value.field) == ("approve", "schema")


def test_the_openapi_form_of_a_schema_is_self_contained() -> None:
    from pydantic import BaseModel

    class Note(BaseModel):
        text: str

    class Approval(BaseModel):
        approved: bool
        note: Note | None = None

    shown = json_schema(Approval)
    assert "$defs" not in json.dumps(shown)
    assert "$ref" not in json.dumps(shown)
    assert shown["properties"]["note"]["anyOf"][0]["properties"]["text"]["type"] == "string"
    assert json_schema(None) == {}
    assert json_schema(APPROVAL) == APPROVAL
