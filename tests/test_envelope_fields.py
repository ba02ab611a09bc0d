"""Typos after a node's name are definition errors: a node's envelope has exactly ``status``,
``output`` and ``error``, so a selector, template or condition reading another field of it is
refused at ``validate`` (and by ``run``, which validates first), naming the node, the field and
what it probably meant."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowrt import Condition, DefinitionError, Workflow

pytestmark = pytest.mark.anyio


def reads(spec: str) -> Workflow:
    wf = Workflow("typos")
    wf.node(lambda: {"content": 1}, name="fetch")
    wf.node(lambda x: x, name="use", inputs={"x": spec})
    return wf


@pytest.mark.parametrize(
    ("spec", "field", "meant"),
    [
        ("$.fetch.outptu", "outptu", "output"),
        ("$.fetch.stauts", "stauts", "status"),
        ("$.fetch['ouptut'].content", "ouptut", "output"),
        ("$.fetch.eror.message", "eror", "error"),
        ("$.fetch.outptu[*]", "outptu", "output"),
        ("{{ fetch.ouptut }}", "ouptut", "output"),
        ("{{ fetch['stauts'] }}", "stauts", "status"),
        ("Hi {{ fetch.outptu.content | upper }}", "outptu", "output"),
        ("$.fetch.output.x || $.fetch.outptu", "outptu", "output"),
    ],
)
def test_a_misspelt_envelope_field_is_a_definition_error(spec: str, field: str, meant: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        reads(spec).validate()
    message = str(refused.value)
    assert refused.value.node == "use"
    assert refused.value.field == "inputs.x"
    assert f"field {field!r} of node 'fetch'" in message
    assert f"did you mean {meant!r}" in message


@pytest.mark.parametrize(
    "spec",
    [
        "$.fetch.output.outptu",  # inside the output: anything goes
        "$.fetch.status",
        "$.fetch.error.message",
        "$.fetch.*",
        "$.fetch",
        "$.input.outptu",  # the run input is not an envelope
        "{{ fetch.output.stauts }} {{ fetch.get('output') }} {{ fetch.items() | list }}",
        "{% for item in fetch.output %}{{ item.whatever }}{% endfor %}",
    ],
)
def test_reading_the_envelope_right_is_accepted(spec: str) -> None:
    reads(spec).validate()


async def test_a_condition_on_a_misspelt_status_is_refused_before_any_run() -> None:
    wf = Workflow("route")
    wf.node(lambda: 1, name="fetch")
    wf.choice("route", {"ok": Condition("$.fetch.stauts", "==", "success"), "down": None})
    with pytest.raises(DefinitionError, match="did you mean 'status'"):
        await wf.run()


def test_a_workflow_output_mapping_is_checked_too() -> None:
    wf = Workflow("out", output={"summary": "$.fetch.ouptut"})
    wf.node(lambda: 1, name="fetch")
    with pytest.raises(DefinitionError, match="field 'ouptut' of node 'fetch'"):
        wf.validate()


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10))
def test_any_field_but_the_three_is_refused(field: str) -> None:
    wf = reads(f"$.fetch.{field}")
    if field in ("status", "output", "error"):
        wf.validate()
    else:
        with pytest.raises(DefinitionError, match="whose result has only"):
            wf.validate()
