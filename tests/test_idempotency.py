"""HTTP idempotency: an ``Idempotency-Key`` gives the same run to a repeated ``POST /runs`` or
``POST /run`` (with a store: on any app instance), another body with the key is 409, and
``status_url`` is an absolute path without the request's query string."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from flowrt import Worker, Workflow
from flowrt.fastapi import workflow_router

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(any_store: Any) -> Any:
    return any_store


def counted(calls: list[int]) -> Workflow:
    wf = Workflow("counted")

    @wf.node
    async def count(n: int = 0) -> int:
        calls.append(n)
        return n

    return wf


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def app_of(wf: Workflow, **options: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(workflow_router(wf, prefix="/api", **options))
    return app


async def test_a_retried_post_runs_returns_the_same_stored_run_on_any_instance(
    store: Any,
) -> None:
    calls: list[int] = []
    wf = counted(calls)
    one, two = app_of(wf, store=store, worker=False), app_of(wf, store=store, worker=False)
    key = {"Idempotency-Key": "order-7"}
    async with client_for(one) as first, client_for(two) as second:
        a = await first.post("/api/runs?trace=1", json={"n": 7}, headers=key)
        b = await second.post("/api/runs", json={"n": 7}, headers=key)  # another instance
        assert (a.status_code, b.status_code) == (202, 202)
        assert a.json() == b.json()
        run_id = a.json()["run_id"]
        assert a.json()["status_url"] == f"/api/runs/{run_id}"  # no host, no query string
        assert a.json()["events_url"] == f"/api/runs/{run_id}/events"
        other = await first.post("/api/runs", json={"n": 8}, headers=key)
        assert other.status_code == 409
        assert "different body" in other.json()["detail"]
        fresh = await first.post("/api/runs", json={"n": 7})  # no key: a new run
        assert fresh.json()["run_id"] != run_id
    assert await Worker(store, [wf], poll_seconds=0.01).drain() == 2
    assert sorted(calls) == [7, 7]  # the keyed run once, the unkeyed once


async def test_a_retried_post_runs_in_memory_returns_the_same_run() -> None:
    calls: list[int] = []
    app = app_of(counted(calls))
    async with app.router.lifespan_context(app), client_for(app) as client:
        key = {"Idempotency-Key": "k"}
        a = await client.post("/api/runs", json={"n": 1}, headers=key)
        b = await client.post("/api/runs", json={"n": 1}, headers=key)
        assert a.json()["run_id"] == b.json()["run_id"]
        assert (await client.post("/api/runs", json={"n": 2}, headers=key)).status_code == 409
        status = f"/api/runs/{a.json()['run_id']}"
        with anyio.fail_after(10):
            while (await client.get(status)).json()["status"] == "running":
                await anyio.sleep(0.01)
    assert calls == [1]


async def test_a_retried_post_run_answers_for_the_first_run() -> None:
    calls: list[int] = []
    app = app_of(counted(calls))
    key = {"Idempotency-Key": "once"}
    async with client_for(app) as client:
        answers = []

        async def post() -> None:
            answers.append(await client.post("/api/run", json={"n": 3}, headers=key))

        async with anyio.create_task_group() as tg:  # two at once: one run
            tg.start_soon(post)
            tg.start_soon(post)
        again = await client.post("/api/run", json={"n": 3}, headers=key)
        conflict = await client.post("/api/run", json={"n": 4}, headers=key)
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["run_id"] == answers[1].json()["run_id"] == again.json()["run_id"]
    assert conflict.status_code == 409
    assert calls == [3]


async def test_a_retried_post_run_with_a_stored_workflow_is_the_stored_run(store: Any) -> None:
    calls: list[int] = []
    wf = counted(calls)
    wf.store = store
    key = {"Idempotency-Key": "stored"}
    async with client_for(app_of(wf)) as one, client_for(app_of(wf)) as two:
        a = await one.post("/api/run", json={"n": 5}, headers=key)
        b = await two.post("/api/run", json={"n": 5}, headers=key)
        assert (a.status_code, b.status_code) == (200, 200)
        assert a.json()["run_id"] == b.json()["run_id"]
        assert (await two.post("/api/run", json={"n": 6}, headers=key)).status_code == 409
    assert calls == [5]
