"""Signals over HTTP (``workflow_router(wf, store=...)``): ``POST /runs/{run_id}/signals/
{signal}`` answers 202 with the ``SignalSent``, honours ``Idempotency-Key``, and refuses with
404/409/413/422 keeping nothing; ``GET /runs/{run_id}`` lists what the run waits for; the
payload schema is in OpenAPI. Two app instances on one store: the signal is posted to one and
the run executed by the other's worker (both stores)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import until
from fastapi import FastAPI
from pydantic import BaseModel
from test_fastapi import uvicorn_server
from test_fastapi_store import follow, stores

from flowrt import ErrorHandling, SQLiteStore, Workflow
from flowrt.fastapi import workflow_router

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Approval(BaseModel):
    approved: bool
    by: str


def refund() -> Workflow:
    wf = Workflow("refund")

    @wf.node
    async def draft(amount: int) -> int:
        return amount

    wf.wait(
        "approve",
        signal="approval",
        schema=Approval,
        timeout_seconds=3600,
        depends=[draft],
        error_handling=ErrorHandling(behavior="return"),
    )
    wf.wait("note", schema={"type": "string"}, depends=[draft])

    @wf.node(depends=["approve", "note"], inputs={"answer": "$.approve.output"})
    async def act(answer: dict[str, Any] | None) -> str:
        return "refunded" if answer and answer["approved"] else "kept"

    return wf


def app(store: Any, *, worker: bool) -> FastAPI:
    served = FastAPI()
    served.include_router(workflow_router(refund(), store=store, worker=worker))
    return served


async def waiting_nodes(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/runs/{run_id}")
    assert answer.status_code == 200
    waiting: list[dict[str, Any]] = answer.json()["waiting"]
    return waiting


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_signal_posted_to_one_instance_finishes_the_run_on_the_others_worker(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    front_store, back_store = stores(kind, request, tmp_path)
    async with (
        uvicorn_server(app(front_store, worker=False)) as (front, _),
        uvicorn_server(app(back_store, worker=True)) as (back, _),
        httpx.AsyncClient(base_url=front, timeout=10) as on_front,
        httpx.AsyncClient(base_url=back, timeout=10) as on_back,
    ):
        run_id = (await on_front.post("/runs", json={"amount": 30})).json()["run_id"]

        async def both_wait() -> bool:
            return len(await waiting_nodes(on_front, run_id)) == 2

        await until(both_wait, what="both waits listed")
        waiting = await waiting_nodes(on_front, run_id)
        assert [(w["node"], w["signal"]) for w in waiting] == [
            ("approve", "approval"),
            ("note", "note"),
        ]
        assert waiting[0]["due"].endswith("+00:00")
        assert waiting[1]["due"] is None
        url = f"/runs/{run_id}/signals/approval"
        body = {"approved": True, "by": "ana"}
        first = await on_front.post(url, json=body, headers={"Idempotency-Key": "t-1"})
        again = await on_front.post(url, json=body, headers={"Idempotency-Key": "t-1"})
        other = {"approved": False, "by": "ana"}
        clash = await on_front.post(url, json=other, headers={"Idempotency-Key": "t-1"})
        note = await on_front.post(f"/runs/{run_id}/signals/note", json="ok")
        events = await follow(on_back, run_id)
        ended = await on_front.post(url, json=body)
        state = (await on_front.get(f"/runs/{run_id}")).json()
    front_store.close()
    back_store.close()
    assert (first.status_code, first.json()) == (
        202,
        {"run_id": run_id, "signal": "approval", "seq": 1, "duplicate": False},
    )
    assert (again.status_code, again.json()["seq"], again.json()["duplicate"]) == (202, 1, True)
    assert clash.status_code == 409
    assert "t-1" in clash.json()["detail"]
    assert (note.status_code, note.json()["seq"]) == (202, 2)
    assert events[-1]["status"] == "success"
    assert state["result"]["nodes"]["act"]["output"] == "refunded"
    assert state["waiting"] == []
    assert ended.status_code == 409


async def asgi(store: SQLiteStore) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app(store, worker=False))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_bad_signals_are_refused_with_their_status_and_nothing_is_kept(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    run_id = await refund().submit({"amount": 5}, store=store)
    url = f"/runs/{run_id}/signals/approval"
    async with await asgi(store) as client:
        answers = {
            "unknown run": await client.post("/runs/nope/signals/approval", json={}),
            "field": await client.post(url, json={"approved": True, "by": 3}),
            "missing": await client.post(url, json={"approved": True}),
            "not json": await client.post(url, content=b"{nope", headers=JSON),
            "no body": await client.post(url),
            "undeclared": await client.post(f"/runs/{run_id}/signals/other", json=1),
            "too big": await client.post(url, content=b" " * (1 << 20) + b"{}", headers=JSON),
            "not a string": await client.post(f"/runs/{run_id}/signals/note", json=5),
        }
    codes = {why: answer.status_code for why, answer in answers.items()}
    assert codes == {
        "unknown run": 404,
        "field": 422,
        "missing": 422,
        "not json": 422,
        "no body": 422,
        "undeclared": 422,
        "too big": 413,
        "not a string": 422,
    }
    assert answers["field"].json()["detail"][0]["loc"] == ["body", "by"]
    assert "'other'" in answers["undeclared"].json()["detail"][0]["msg"]
    assert await store.signals(run_id) == []
    store.close()


JSON = {"content-type": "application/json"}


async def test_a_chunked_body_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    run_id = await refund().submit({"amount": 5}, store=store)

    async def chunks() -> Any:
        for _ in range(17):
            yield b" " * 65536  # no Content-Length: the size is counted as it arrives

    async with await asgi(store) as client:
        answer = await client.post(f"/runs/{run_id}/signals/note", content=chunks())
    assert answer.status_code == 413
    assert await store.signals(run_id) == []
    store.close()


async def test_openapi_shows_each_signals_payload_schema(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    async with await asgi(store) as client:
        spec = (await client.get("/openapi.json")).json()
    store.close()
    approval = spec["paths"]["/runs/{run_id}/signals/approval"]["post"]
    schema = approval["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["approved", "by"]
    assert set(approval["responses"]) >= {"202", "404", "409", "413", "422"}
    note = spec["paths"]["/runs/{run_id}/signals/note"]["post"]
    assert note["requestBody"]["content"]["application/json"]["schema"] == {"type": "string"}
    assert "/runs/{run_id}/signals/{signal}" not in spec["paths"]
    assert json.dumps(spec).count("Idempotency-Key") >= 2
