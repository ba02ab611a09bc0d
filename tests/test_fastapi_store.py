"""``workflow_router(wf, store=store)``: background runs kept in the store. Two app instances
(two real uvicorn servers, each with its own store object) on one SQLite file or one
PostgreSQL database: a run started on one is executed by the other's worker, and read, listed
and followed as Server-Sent Events on both."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from test_fastapi import uvicorn_server

from flowrt import SQLiteStore, Workflow
from flowrt.fastapi import workflow_router

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn and httpx run on asyncio


def shipping() -> Workflow:
    wf = Workflow("shipping")

    @wf.node
    async def weigh(parcel: int) -> int:
        await anyio.sleep(0.05)
        return parcel * 2

    @wf.node(inputs={"grams": "$.weigh.output"})
    async def label(grams: int) -> str:
        return f"{grams} g"

    return wf


def stores(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Any]:
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "runs.db"), SQLiteStore(tmp_path / "runs.db")
    pytest.importorskip("psycopg")
    from flowrt.postgres import PostgresStore

    url = request.getfixturevalue("postgres_url")
    return PostgresStore(url), PostgresStore(url)


def app(store: Any, *, worker: bool) -> FastAPI:
    served = FastAPI()
    served.include_router(workflow_router(shipping(), store=store, worker=worker))
    return served


async def follow(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    events = []
    async with client.stream("GET", f"/runs/{run_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    return events


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_run_started_on_one_instance_is_read_and_followed_on_the_other(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    front_store, back_store = stores(kind, request, tmp_path)
    async with (
        uvicorn_server(app(front_store, worker=False)) as (front, _),
        uvicorn_server(app(back_store, worker=True)) as (back, _),
        httpx.AsyncClient(base_url=front, timeout=10) as on_front,
        httpx.AsyncClient(base_url=back, timeout=10) as on_back,
    ):
        started = await on_front.post("/runs", json={"parcel": 21})
        assert started.status_code == 202
        run_id = started.json()["run_id"]
        events = await follow(on_back, run_id)  # live, from the other instance
        state = (await on_front.get(f"/runs/{run_id}")).json()
        listed = (await on_back.get("/runs")).json()
        missing = await on_back.get("/runs/nope")
        replay = await on_front.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "2"})
    front_store.close()
    back_store.close()
    assert [(e["kind"], e["node"]) for e in events] == [
        ("run.started", None), ("node.finished", "weigh"), ("node.finished", "label"),
        ("run.finished", None),
    ]  # fmt: skip
    assert events[-1]["status"] == "success"
    assert events[-1]["result"]["output"] == {"label": "42 g"}
    assert state["status"] == "success"
    assert state["result"]["nodes"]["weigh"]["output"] == 42
    assert [(run["run_id"], run["status"]) for run in listed] == [(run_id, "success")]
    assert missing.status_code == 404
    kinds = [line[7:] for line in replay.text.splitlines() if line.startswith("event: ")]
    assert kinds == ["node.finished", "run.finished"]  # after the second event


async def test_without_a_worker_a_submitted_run_waits_queued(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    served = app(store, worker=False)
    async with served.router.lifespan_context(served):
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            run_id = (await client.post("/runs", json={"parcel": 1})).json()["run_id"]
            await anyio.sleep(0.3)
            state = (await client.get(f"/runs/{run_id}")).json()
            bad = await client.post("/runs", json={"parcel": "heavy"})
    store.close()
    assert (state["status"], state["result"]) == ("queued", None)
    assert bad.status_code == 422
