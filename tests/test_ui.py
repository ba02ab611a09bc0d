"""The run viewer's pages over HTTP (``workflow_router(wf, store=..., ui=True)`` and the
``flowrt ui`` app): the runs list with its filters and pages, a run's page and a node's details
with user data escaped, read-only behaviour, errors, the assets, and the live stream."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import viewer_flows
from fastapi import FastAPI
from test_fastapi import uvicorn_server

from flowrt import RunResult, SQLiteStore, Workflow
from flowrt._web.pages import viewer_router
from flowrt.fastapi import workflow_router

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn and httpx run on asyncio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "runs.db") as opened:
        yield opened


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def all_workflows(store: SQLiteStore) -> FastAPI:
    """What ``flowrt ui`` serves: every workflow in the store, their graphs from their rows."""
    app = FastAPI()
    app.include_router(viewer_router(store))
    return app


def one_workflow(store: SQLiteStore, prefix: str = "/shop") -> FastAPI:
    app = FastAPI()
    router = workflow_router(viewer_flows.shop, store=store, ui=True, worker=False)
    app.include_router(router, prefix=prefix)
    return app


async def shop_and_broken(store: SQLiteStore) -> tuple[RunResult, RunResult]:
    shop = await viewer_flows.shop.run({"order_id": 7}, store=store)
    broken = await viewer_flows.broken.run({}, store=store)
    return shop, broken


def run_ids(page: str) -> list[str]:
    return re.findall(r'<tr class="run" data-run="([^"]+)"', page)


async def test_the_runs_page_lists_runs_newest_first_with_their_figures(store: SQLiteStore) -> None:
    shop, broken = await shop_and_broken(store)
    async with client_for(all_workflows(store)) as client:
        page = await client.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert run_ids(page.text) == [broken.run_id, shop.run_id]
    row = page.text.split(f'data-run="{shop.run_id}"')[1].split("</tr>")[0]
    assert "shop" in row
    assert "status-success" in row
    assert ">1</td>" in row
    assert re.search(r"<td>\d+ ms</td>", row)  # its duration


async def test_the_runs_page_filters_by_status_and_workflow(store: SQLiteStore) -> None:
    shop, broken = await shop_and_broken(store)
    async with client_for(all_workflows(store)) as client:
        failed = await client.get("/ui", params={"status": "failure"})
        of_shop = await client.get("/ui", params={"workflow": "shop"})
        none = await client.get("/ui", params={"status": "failure", "workflow": "shop"})
    assert run_ids(failed.text) == [broken.run_id]
    assert run_ids(of_shop.text) == [shop.run_id]
    assert run_ids(none.text) == []
    assert "No runs match this filter" in none.text
    assert '<option value="failure" selected>' in failed.text


async def test_the_runs_page_is_paged(store: SQLiteStore) -> None:
    wf = Workflow("tiny")
    wf.node(viewer_flows.render, inputs={"items": "$.input.n"})
    ids = [(await wf.run({"n": n}, store=store, run_id=f"t{n:02d}")).run_id for n in range(7)]
    async with client_for(all_workflows(store)) as client:
        pages = [await client.get("/ui", params={"limit": 3, "page": k}) for k in (1, 2, 3)]
    seen = [run_ids(page.text) for page in pages]
    assert [run_id for page in seen for run_id in page] == ids[::-1]  # every run once, newest first
    assert [len(found) for found in seen] == [3, 3, 1]
    assert 'rel="next" href="?limit=3&amp;page=2"' in pages[0].text  # the page size is kept
    assert 'rel="prev"' not in pages[0].text
    assert 'rel="prev" href="?limit=3&amp;page=2"' in pages[2].text
    assert 'rel="next"' not in pages[2].text


async def test_user_data_is_escaped_everywhere_it_is_shown(store: SQLiteStore) -> None:
    shop, broken = await shop_and_broken(store)
    async with client_for(all_workflows(store)) as client:
        output = await client.get(f"/ui/runs/{shop.run_id}/nodes/render")
        error = await client.get(f"/ui/runs/{broken.run_id}/nodes/explode")
        run = await client.get(f"/ui/runs/{broken.run_id}")
    assert "<script>alert" not in output.text
    shown = re.search(r'<pre class="value output">(.*?)</pre>', output.text, re.S)
    assert shown is not None
    assert "&lt;script&gt;" in shown.group(1)
    assert json.loads(html.unescape(shown.group(1))) == "<script>alert(1)</script>"
    assert "<b>bad</b>" not in error.text + run.text
    assert "&lt;b&gt;bad&lt;/b&gt; input" in error.text
    assert "Traceback" in error.text  # the final failure's traceback
    policy = dict(
        part.strip().split(" ", 1) for part in run.headers["content-security-policy"].split(";")
    )
    assert policy["script-src"] == "'self'"  # no inline script runs, even one slipped in


async def test_a_run_page_shows_every_node_and_its_timeline(store: SQLiteStore) -> None:
    shop, _ = await shop_and_broken(store)
    async with client_for(one_workflow(store)) as client:
        page = await client.get(f"/shop/ui/runs/{shop.run_id}")
    text = page.text
    for name, status in {"fetch": "success", "backup": "skip", "slow_quote": "failure"}.items():
        assert f'class="node status-{status} kind-task" data-node="{name}"' in text
    assert 'class="node status-success kind-choice" data-node="route"' in text
    fetch_row = text.split('data-node="fetch" title="fetch"')[1].split("</li>")[0]
    assert fetch_row.count('class="bar failed"') == 2
    assert fetch_row.count('class="bar ok"') == 1
    assert fetch_row.count('class="bar wait"') == 2
    assert 'class="edge-label taken"' in text
    assert ">primary</text>" in text
    assert 'href="../../ui/assets/viewer.css"' in text  # relative: works under the prefix


async def test_a_node_shows_its_resolved_input_and_output(store: SQLiteStore) -> None:
    shop, _ = await shop_and_broken(store)
    async with client_for(one_workflow(store)) as client:
        page = await client.get(f"/shop/ui/runs/{shop.run_id}/nodes/wait_gate")
        skipped = await client.get(f"/shop/ui/runs/{shop.run_id}/nodes/backup")
    inputs = re.search(r'<pre class="value input">(.*?)</pre>', page.text, re.S)
    assert inputs is not None
    assert json.loads(html.unescape(inputs.group(1))) == {
        "order": {"order_id": 7, "items": 3}, "gate": None,
    }  # fmt: skip
    assert "None: the node is skip." in skipped.text
    assert "not taken" in skipped.text


async def test_unknown_runs_nodes_and_assets_are_404(store: SQLiteStore) -> None:
    shop, broken = await shop_and_broken(store)
    async with client_for(one_workflow(store)) as client:
        assert (await client.get("/shop/ui/runs/nope")).status_code == 404
        # a router serves only its own workflow's runs
        assert (await client.get(f"/shop/ui/runs/{broken.run_id}")).status_code == 404
        assert run_ids((await client.get("/shop/ui")).text) == [shop.run_id]
        assert (await client.get(f"/shop/ui/runs/{shop.run_id}/nodes/nope")).status_code == 404
        assert (await client.get("/shop/ui/assets/page.html")).status_code == 404
        assert (await client.get("/shop/ui/assets/..%2F_ui.py")).status_code == 404
        css = await client.get("/shop/ui/assets/viewer.css")
        script = await client.get("/shop/ui/assets/viewer.js")
    assert css.headers["content-type"].startswith("text/css")
    assert script.headers["content-type"].startswith("text/javascript")


async def test_the_viewer_never_changes_a_run(store: SQLiteStore) -> None:
    shop, _ = await shop_and_broken(store)
    before = await store.load_run(shop.run_id)
    async with client_for(one_workflow(store)) as client:
        for path in ("", "/body", "/nodes/fetch"):
            assert (await client.get(f"/shop/ui/runs/{shop.run_id}{path}")).status_code == 200
            post = await client.post(f"/shop/ui/runs/{shop.run_id}{path}")
            assert post.status_code == 405
    assert await store.load_run(shop.run_id) == before


def test_ui_needs_a_store() -> None:
    with pytest.raises(ValueError, match="ui=True needs store"):
        workflow_router(viewer_flows.shop, ui=True)


async def test_a_definition_that_cannot_be_loaded_still_shows_the_run(store: SQLiteStore) -> None:
    shop, _ = await shop_and_broken(store)
    await store._call(  # the module its calls name, and that defined it, is gone
        lambda db: db.execute(
            "UPDATE runs SET definition = replace(definition, 'viewer_flows:', 'gone_module:'), "
            "source = replace(source, 'viewer_flows', 'gone_module')"
        )
    )
    async with client_for(all_workflows(store)) as client:
        page = await client.get(f"/ui/runs/{shop.run_id}")
        node = await client.get(f"/ui/runs/{shop.run_id}/nodes/fetch")
    assert page.status_code == 200
    assert "cannot be loaded here" in page.text
    assert 'data-node="fetch"' in page.text
    assert "<svg" not in page.text
    assert "definition is not available here" in node.text
    assert "order_id" in node.text


async def test_a_live_run_streams_changes_then_its_end(store: SQLiteStore, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    app = all_workflows(store)
    kinds: list[str] = []
    async with uvicorn_server(app) as (url, _), anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: viewer_flows.shop.run(
                {"order_id": 1, "gate": str(gate)}, store=store, run_id="live"
            )
        )
        with anyio.fail_after(10):
            while (run := await store.load_run("live")) is None or len(run.nodes) < 4:
                await anyio.sleep(0.05)
        client = httpx.AsyncClient(base_url=url, timeout=10)
        async with client, client.stream("GET", "/ui/runs/live/live") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    kinds.append(line.split(":", 1)[1].strip())
                    if len(kinds) == 1:
                        gate.touch()  # the run goes on: its records change, then it ends
    assert kinds[-1] == "ended"
    assert "changed" in kinds[:-1]
    assert (await store.load_run("live")).status == "success"


async def test_the_viewer_reads_a_postgresql_store(postgres_url: str) -> None:
    pytest.importorskip("psycopg")
    from flowrt.postgres import PostgresStore

    async with PostgresStore(postgres_url) as store:
        shop = await viewer_flows.shop.run({"order_id": 7}, store=store)
        broken = await viewer_flows.broken.run({}, store=store)
        app = FastAPI()
        app.include_router(viewer_router(store))
        async with client_for(app) as client:
            listing = await client.get("/ui", params={"status": "failure"})
            page = await client.get(f"/ui/runs/{shop.run_id}")
            node = await client.get(f"/ui/runs/{shop.run_id}/nodes/render")
    assert run_ids(listing.text) == [broken.run_id]
    assert 'class="node status-skip kind-task" data-node="backup"' in page.text
    assert "&lt;script&gt;" in node.text
    assert "<script>alert" not in node.text


async def test_the_deadline_is_drawn_on_the_timeline(store: SQLiteStore, tmp_path: Path) -> None:
    gate = str(tmp_path / "never")
    late = await viewer_flows.shop.run({"order_id": 1, "gate": gate}, store=store, timeout=0.3)
    shop, _ = await shop_and_broken(store)
    app = FastAPI()  # a router's own timeout is every run's deadline
    router = workflow_router(viewer_flows.shop, store=store, ui=True, worker=False, timeout=9)
    app.include_router(router)
    async with client_for(all_workflows(store)) as client:
        ran_out = await client.get(f"/ui/runs/{late.run_id}")
        in_time = await client.get(f"/ui/runs/{shop.run_id}")
    async with client_for(app) as client:
        with_timeout = await client.get(f"/ui/runs/{shop.run_id}")
    assert "timed out after 0.3s" in ran_out.text
    assert ran_out.text.count('class="deadline"') == len(viewer_flows.shop.nodes)
    assert 'class="deadline"' not in in_time.text
    assert "<dt>Deadline</dt><dd>9.00 s</dd>" in with_timeout.text
    assert 'class="deadline" style="left: 100.000%"' in with_timeout.text  # the span ends there


async def test_a_parked_retry_shows_as_waiting_with_its_wait(store: SQLiteStore) -> None:
    from flowrt._models import AttemptRecord, ErrorInfo
    from flowrt._store.records import RunRow, node_text, trace_json

    row = RunRow("parked", "shop", '{"order_id": 3}', "running", "2026-11-30T10:00:00+00:00")
    row.definition = json.dumps(viewer_flows.shop.to_dict())
    await store.claim("parked", "A", new=row)
    failed = AttemptRecord(1, 0.0, 0.1, ErrorInfo(type="ConnectionError", message="down"), 60.0)
    error = {"type": "ConnectionError", "message": "down"}
    waiting = node_text("fetch", "waiting", None, error, 1, 0.0, None, trace_json([failed]), 2e9)
    row.status = "waiting"
    await store.write("parked", 1, 1, [waiting], row, release=True)
    async with client_for(all_workflows(store)) as client:
        page = await client.get("/ui/runs/parked")
        listing = await client.get("/ui", params={"status": "waiting"})
    assert run_ids(listing.text) == ["parked"]
    assert 'class="node status-waiting kind-task" data-node="fetch"' in page.text
    fetch_row = page.text.split('data-node="fetch" title="fetch"')[1].split("</li>")[0]
    assert fetch_row.count('class="bar failed"') == 1
    assert fetch_row.count('class="bar wait"') == 1
    assert 'data-live="parked/live"' in page.text  # followed live until it ends


async def test_pages_are_built_and_rendered_off_the_loop(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of thousands of nodes takes a tenth of a second to build and render: both happen in
    worker threads, never in the thread running the app's event loop."""
    import threading

    import flowrt._web.pages

    threads: dict[str, set[int]] = {"view": set(), "render": set()}

    def spied(name: str, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            threads[name].add(threading.get_ident())
            return fn(*args, **kwargs)

        return call

    monkeypatch.setattr(flowrt._web.pages, "run_view", spied("view", flowrt._web.pages.run_view))
    monkeypatch.setattr(
        flowrt._web.pages, "format_seconds", spied("render", flowrt._web.pages.format_seconds)
    )
    shop, _ = await shop_and_broken(store)
    async with client_for(all_workflows(store)) as client:
        for path in ("", "/body", "/nodes/fetch"):
            assert (await client.get(f"/ui/runs/{shop.run_id}{path}")).status_code == 200
        assert (await client.get("/ui")).status_code == 200
    assert threads["view"]
    assert threads["render"]
    assert threading.get_ident() not in threads["view"] | threads["render"]
