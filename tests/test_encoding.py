"""One JSON encoding everywhere: a node's output is put in pydantic's JSON form as the node
finishes, so dependents, the result, a store and HTTP all see the same value, with or without
a store; what that form cannot hold fails the node with ``OutputError`` naming it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flowrt import ErrorHandling, SQLiteStore, Workflow
from flowrt.fastapi import workflow_router

pytestmark = pytest.mark.anyio


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Order(BaseModel):
    id: int
    at: dt.datetime


WHEN = dt.datetime(2026, 12, 6, 10, 30, tzinfo=dt.UTC)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
VALUES: dict[str, tuple[Any, Any]] = {  # a node's output, and its JSON form
    "datetime": (WHEN, "2026-12-06T10:30:00Z"),
    "date": (dt.date(2026, 12, 6), "2026-12-06"),
    "decimal": (Decimal("1.10"), "1.10"),
    "uuid": (ID, str(ID)),
    "enum": (Colour.RED, "red"),
    "set": ({3}, [3]),
    "dataclass": (Point(1, 2), {"x": 1, "y": 2}),
    "model": (Order(id=7, at=WHEN), {"id": 7, "at": "2026-12-06T10:30:00Z"}),
    "nested": ({"when": [WHEN], "n": 1}, {"when": ["2026-12-06T10:30:00Z"], "n": 1}),
    "plain": ({"a": [1, 2.5, None, True]}, {"a": [1, 2.5, None, True]}),
}


def producing(value: Any, store: Any = None) -> Workflow:
    wf = Workflow("enc", store=store, output={"seen": "$.seen.output"})
    wf.node(lambda: value, name="make", error_handling=ErrorHandling.ignore())

    @wf.node(inputs={"got": "$.make.output"})
    def seen(got: Any) -> Any:
        return got

    return wf


@pytest.mark.parametrize("case", VALUES)
async def test_an_output_is_its_json_form_with_and_without_a_store(
    case: str, tmp_path: Path
) -> None:
    value, form = VALUES[case]
    memory = await producing(value).run()
    with SQLiteStore(tmp_path / "runs.db") as store:
        stored = await producing(value, store).run(run_id="r")
        again = await producing(value, store).run(run_id="r")  # read back from the store
    for result in (memory, stored, again):
        assert result["make"].output == form
        assert result["seen"].output == form  # the dependent got the same value
        assert result.output == {"seen": form}


async def test_http_answers_carry_the_same_form() -> None:
    wf = producing(VALUES["model"][0])
    app = FastAPI()
    app.include_router(workflow_router(wf))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = (await client.post("/run", json={})).json()
    assert answer["nodes"]["make"]["output"] == VALUES["model"][1]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (object(), "object"),
        (b"\xff\xfe", "bytes"),
        (math.nan, "NaN"),
        ([math.inf], "Infinity"),
    ],
)
async def test_what_json_cannot_hold_fails_the_node_the_same_way_everywhere(
    value: Any, named: str, tmp_path: Path
) -> None:
    memory = await producing(value).run()
    with SQLiteStore(tmp_path / "runs.db") as store:
        stored = await producing(value, store).run()
    for result in (memory, stored):
        error = result["make"].error
        assert error is not None
        assert error.type == "OutputError"
        assert error.message.startswith("node 'make': its output cannot be stored as JSON")
        assert named in error.message
    assert memory["make"].error.message == stored["make"].error.message  # type: ignore[union-attr]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_plain_json_comes_back_equal(value: Any) -> None:
    import anyio

    result = anyio.run(producing(value).run)
    assert result["make"].output == value
