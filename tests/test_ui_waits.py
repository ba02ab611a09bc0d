"""The run viewer and ``runs list`` show a run parked on a wait: its waiting node with the
signal it waits for and its due time (graph, timeline and details), the run listed under
``waiting``; a signal wakes it and the open page's live stream reports the change, then the
end."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import until
from fastapi import FastAPI
from test_fastapi import uvicorn_server

from flowrt import SQLiteStore, Worker, Workflow
from flowrt._web.pages import viewer_router
from flowrt._web.stored_runs import events_of

pytestmark = pytest.mark.anyio
FLOWRT = str(Path(sys.executable).parent / "flowrt")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    settings = {"heartbeat_seconds": 0.1, "park_after_seconds": 0.2, "poll_seconds": 0.05}
    async with SQLiteStore(tmp_path / "runs.db", **settings) as opened:  # type: ignore[arg-type]
        yield opened


def review() -> Workflow:
    wf = Workflow("review")

    @wf.node
    async def draft() -> str:
        return "text"

    wf.wait("approve", signal="approval", timeout_seconds=7200, depends=[draft])
    wf.sleep("cool_off", seconds=3600, depends=[draft])
    wf.wait("note", depends=[draft])
    return wf


REVIEW = review()  # at module level: the viewer finds it by the run's stored source
QUICK = Workflow("quick")
QUICK.wait("approve")


async def parked(store: SQLiteStore, wf: Workflow) -> str:
    run_id = await wf.submit({}, store=store, run_id="parked")

    async def is_waiting() -> bool:
        run = await store.load_run(run_id)
        return run is not None and run.status == "waiting" and run.owner is None

    await until(is_waiting, what="the run parked")
    return run_id


async def test_a_parked_wait_shows_its_signal_and_due_time(store: SQLiteStore) -> None:
    wf = REVIEW
    app = FastAPI()
    app.include_router(viewer_router(store))
    transport = httpx.ASGITransport(app=app)
    async with anyio.create_task_group() as tg:
        worker = Worker(store, [wf], concurrency=1, poll_seconds=0.05)
        tg.start_soon(worker.serve)
        run_id = await parked(store, wf)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            page = (await client.get(f"/ui/runs/{run_id}")).text
            approve = (await client.get(f"/ui/runs/{run_id}/nodes/approve")).text
            note = (await client.get(f"/ui/runs/{run_id}/nodes/note")).text
            nap = (await client.get(f"/ui/runs/{run_id}/nodes/cool_off")).text
            listing = (await client.get("/ui", params={"status": "waiting"})).text
        command = [FLOWRT, "runs", "list", "--status", "waiting", "--store", str(store.path)]
        listed = await anyio.run_process(command)
        row = await store.load_run(run_id)
        assert row is not None
        events = events_of(row, await store.waits(run_id))
        tg.cancel_scope.cancel()
    waiting = {e.node: (e.signal, e.wait) for e in events if e.kind == "node.waiting"}
    assert set(waiting) == {"approve", "cool_off", "note"}
    assert waiting["approve"][0] == "approval"
    assert 7000 < (waiting["approve"][1] or 0) <= 7200
    assert waiting["cool_off"][0] is None
    assert waiting["note"] == ("note", None)
    lines = listed.stdout.decode().splitlines()
    assert len(lines) == 2
    assert lines[1].split()[:3] == ["parked", "review", "waiting"]
    assert 'class="node status-waiting kind-wait" data-node="approve"' in page
    assert 'class="node status-waiting kind-sleep" data-node="cool_off"' in page
    assert re.search(r">for approval · until \d\d:\d\d</text>", page)
    assert ">for note</text>" in page
    assert re.search(r">sleeping · until \d\d:\d\d</text>", page)
    assert re.search(r"waiting for approval until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)
    assert '<dd class="waits-for">signal approval</dd>' in approve
    assert re.search(r'<dd class="due">\d{4}-.* UTC</dd>', approve)
    assert '<dd class="due">no timeout</dd>' in note
    assert '<dd class="waits-for">its time</dd>' in nap
    assert 'data-run="parked"' in listing


async def test_a_signal_updates_the_open_page_live(store: SQLiteStore) -> None:
    wf = QUICK
    app = FastAPI()
    app.include_router(viewer_router(store))
    kinds: list[str] = []
    async with uvicorn_server(app) as (url, _), anyio.create_task_group() as tg:
        tg.start_soon(Worker(store, [wf], concurrency=1, poll_seconds=0.05).serve)
        run_id = await parked(store, wf)
        client = httpx.AsyncClient(base_url=url, timeout=10)
        async with client, client.stream("GET", f"/ui/runs/{run_id}/live") as stream:
            await wf.signal(run_id, "approve", {"ok": True}, store=store)
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    kinds.append(line.split(":", 1)[1].strip())
        tg.cancel_scope.cancel()
    assert kinds[-1] == "ended"
    run = await store.load_run(run_id)
    assert run is not None
    assert run.status == "success"
