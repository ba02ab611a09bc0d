"""flowrt.fastapi: routes through httpx's ASGI transport; disconnects, SSE and shutdown against a
real uvicorn server on a free loopback port."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from flowrt import ErrorHandling, Workflow
from flowrt.fastapi import workflow_router

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn and httpx run on asyncio


def order_workflow() -> Workflow:
    wf = Workflow("order-intake")

    @wf.node
    async def check(order_id: int, amount: float = 1.0) -> dict[str, Any]:
        if amount < 0:
            raise ValueError("negative amount")
        return {"id": order_id, "amount": amount}

    @wf.node(
        inputs={"order": "$.check.output"},
        error_handling=ErrorHandling(max_retries=1, retry_interval_seconds=0),
    )
    async def charge(order: dict[str, Any]) -> str:
        return f"charged {order['id']}"

    return wf


def app_for(wf: Workflow) -> FastAPI:
    app = FastAPI()
    app.include_router(workflow_router(wf))
    return app


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_post_run_answers_200_with_the_run_result() -> None:
    async with asgi_client(app_for(order_workflow())) as client:
        response = await client.post("/run", json={"order_id": 7})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["output"] == {"charge": "charged 7"}
    assert body["nodes"]["check"]["output"] == {"id": 7, "amount": 1.0}


async def test_a_failed_run_answers_500_with_the_failing_nodes_error() -> None:
    async with asgi_client(app_for(order_workflow())) as client:
        response = await client.post("/run", json={"order_id": 7, "amount": -5})
    assert response.status_code == 500
    body = response.json()
    assert body["status"] == "failure"
    assert (body["error"]["type"], body["error"]["message"]) == ("ValueError", "negative amount")
    assert "raise ValueError" in body["error"]["traceback"]
    assert body["nodes"]["charge"]["status"] == "skip"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"order_id": "seven"}, "order_id"),
        ({"amount": 3}, "order_id"),
        ({"order_id": 1, "amount": "lots"}, "amount"),
    ],
)
async def test_a_bad_body_gets_422_naming_the_field(payload: dict[str, Any], field: str) -> None:
    async with asgi_client(app_for(order_workflow())) as client:
        response = await client.post("/run", json=payload)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


async def test_the_docs_show_the_input_schema() -> None:
    async with asgi_client(app_for(order_workflow())) as client:
        schema = (await client.get("/openapi.json")).json()["components"]["schemas"][
            "OrderIntakeInput"
        ]
    assert schema["required"] == ["order_id"]
    assert schema["properties"]["order_id"]["type"] == "integer"
    assert schema["properties"]["amount"]["default"] == 1.0


async def test_the_docs_show_the_idempotency_key_header_of_both_run_routes() -> None:
    async with asgi_client(app_for(order_workflow())) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    now, later = paths["/run"]["post"]["parameters"], paths["/runs"]["post"]["parameters"]
    assert now == later  # read from the request by POST /run, declared by POST /runs
    assert [(p["name"], p["in"], p["required"]) for p in now] == [
        ("Idempotency-Key", "header", False)
    ]


async def test_a_background_run_completes_and_is_readable() -> None:
    async with asgi_client(app_for(order_workflow())) as client:
        started = await client.post("/runs", json={"order_id": 3})
        assert started.status_code == 202
        run_id = started.json()["run_id"]
        assert started.json()["status_url"].endswith(f"/runs/{run_id}")
        with anyio.fail_after(5):
            while (state := (await client.get(f"/runs/{run_id}")).json())["status"] == "running":
                await anyio.sleep(0.01)
    assert state["status"] == "success"
    assert state["result"]["run_id"] == run_id
    assert state["result"]["output"] == {"charge": "charged 3"}


async def test_background_runs_get_workflow_level_retry() -> None:
    calls: list[int] = []
    wf = Workflow("flaky", retry=__import__("flowrt").WorkflowRetry(max_retries=2, delay_seconds=0))

    @wf.node
    async def once_broken() -> int:
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionError("first run fails")
        return len(calls)

    async with asgi_client(app_for(wf)) as client:
        run_id = (await client.post("/runs", json={})).json()["run_id"]
        with anyio.fail_after(5):
            while (state := (await client.get(f"/runs/{run_id}")).json())["status"] == "running":
                await anyio.sleep(0.01)
    assert (state["status"], state["result"]["attempts"]) == ("success", 2)


async def test_unknown_runs_are_404_and_the_graph_is_mermaid() -> None:
    async with asgi_client(app_for(order_workflow())) as client:
        assert (await client.get("/runs/nope")).status_code == 404
        graph = await client.get("/graph")
    assert graph.text.splitlines()[0] == "flowchart TD"
    assert "n0 --> n1" in graph.text


async def test_background_runs_need_the_lifespan() -> None:
    transport = httpx.ASGITransport(app=app_for(order_workflow()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/runs", json={"order_id": 1})
    assert response.status_code == 503


@asynccontextmanager
async def uvicorn_server(app: FastAPI, **options: Any) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """``app`` served on a free loopback port (``options``: uvicorn's, such as ``http=``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", **options)
    server = uvicorn.Server(config)
    with sock:  # uvicorn does not close sockets it is handed
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(5):
                while not server.started:
                    await anyio.sleep(0.01)
            try:
                yield f"http://127.0.0.1:{port}", server
            finally:
                server.should_exit = True


def gated_workflow(gate: anyio.Event, started: anyio.Event, stopped: list[str]) -> Workflow:
    wf = Workflow("gated")

    @wf.node
    async def wait_for_gate() -> str:
        started.set()
        try:
            await gate.wait()
            return "opened"
        finally:
            stopped.append("wait_for_gate")

    @wf.node(depends=[wait_for_gate])
    async def after() -> str:
        return "after"

    return wf


async def test_a_client_disconnect_cancels_its_run() -> None:
    gate, started, stopped = anyio.Event(), anyio.Event(), []
    async with uvicorn_server(app_for(gated_workflow(gate, started, stopped))) as (url, _):
        async with anyio.create_task_group() as tg, httpx.AsyncClient(base_url=url) as client:

            async def post() -> None:
                await client.post("/run", json={})

            tg.start_soon(post)
            with anyio.fail_after(5):
                await started.wait()
            tg.cancel_scope.cancel()  # the client goes away mid-run
        with anyio.fail_after(5):
            while not stopped:
                await anyio.sleep(0.01)
    assert stopped == ["wait_for_gate"]
    assert not gate.is_set()


async def test_events_stream_as_server_sent_events() -> None:
    gate, started, stopped = anyio.Event(), anyio.Event(), []
    app = app_for(gated_workflow(gate, started, stopped))
    kinds: list[str] = []
    async with uvicorn_server(app) as (url, _):
        client = httpx.AsyncClient(base_url=url, timeout=5)
        async with client:
            run_id = (await client.post("/runs", json={})).json()["run_id"]
            async with client.stream("GET", f"/runs/{run_id}/events") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        event = json.loads(line.removeprefix("data: "))
                        kinds.append(f"{event['kind']}:{event['node']}")
                        if event["kind"] == "node.started" and event["node"] == "wait_for_gate":
                            gate.set()  # opened only once the stream has shown the node running
    assert kinds == [
        "run.started:None",
        "node.started:wait_for_gate",
        "node.finished:wait_for_gate",
        "node.started:after",
        "node.finished:after",
        "run.finished:None",
    ]


async def test_shutdown_cancels_background_runs() -> None:
    gate, started, stopped = anyio.Event(), anyio.Event(), []
    async with uvicorn_server(app_for(gated_workflow(gate, started, stopped))) as (url, _server):
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.post("/runs", json={})).status_code == 202
        with anyio.fail_after(5):
            await started.wait()
    # the server has stopped: its lifespan cancelled the run, whose node stopped before exit
    assert stopped == ["wait_for_gate"]
    assert not gate.is_set()


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def odd_outputs_workflow() -> Workflow:
    wf = Workflow("odd-outputs")
    wf.node(lambda: Opaque(), name="opaque")
    wf.node(lambda: b"\xff\xfe", name="raw")
    return wf


async def test_outputs_json_cannot_hold_fail_their_nodes_and_the_answer_is_whole() -> None:
    async with asgi_client(app_for(odd_outputs_workflow())) as client:
        answer = await client.post("/run", json={})
        assert answer.status_code == 500  # the run failed: its nodes' outputs are not JSON
        nodes = answer.json()["nodes"]
        assert nodes["opaque"]["error"]["type"] == "OutputError"
        assert "Opaque" in nodes["opaque"]["error"]["message"]
        assert nodes["raw"]["error"]["type"] == "OutputError"
        run_id = (await client.post("/runs", json={})).json()["run_id"]
        with anyio.fail_after(5):
            while (state := await client.get(f"/runs/{run_id}")).json()["status"] == "running":
                await anyio.sleep(0.01)
        assert state.status_code == 200
        assert state.json()["result"]["nodes"]["opaque"]["error"]["type"] == "OutputError"
        events = (await client.get(f"/runs/{run_id}/events")).text
    data = [json.loads(line[6:]) for line in events.splitlines() if line.startswith("data: ")]
    assert data[-1]["kind"] == "run.finished"  # the stream ends with run.finished, whole
    assert data[-1]["result"]["nodes"]["raw"]["error"]["type"] == "OutputError"


async def test_events_carry_ids_resume_after_last_event_id_and_ping_when_idle() -> None:
    gate, started, stopped = anyio.Event(), anyio.Event(), []
    app = FastAPI()
    app.include_router(workflow_router(gated_workflow(gate, started, stopped), ping=0.1))
    pinged, ids = False, []
    async with (
        uvicorn_server(app) as (url, _),
        httpx.AsyncClient(base_url=url, timeout=5) as client,
    ):
        run_id = (await client.post("/runs", json={})).json()["run_id"]
        async with client.stream("GET", f"/runs/{run_id}/events") as response:
            assert response.headers["x-accel-buffering"] == "no"
            async for line in response.aiter_lines():
                if line.startswith(": ping"):  # the run waits at the gate: the stream pings
                    pinged = True
                    gate.set()
                elif line.startswith("id: "):
                    ids.append(int(line.removeprefix("id: ")))
        # a client that reconnects after the third event
        resumed = await client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "3"})
    assert pinged
    assert ids == [1, 2, 3, 4, 5, 6]
    kinds = [line[7:] for line in resumed.text.splitlines() if line.startswith("event: ")]
    assert kinds == ["node.started", "node.finished", "run.finished"]  # events 4, 5, 6


async def test_a_follower_open_at_shutdown_gets_the_cancelled_run_finished() -> None:
    gate, started, stopped = anyio.Event(), anyio.Event(), []
    app = app_for(gated_workflow(gate, started, stopped))
    kinds: list[str] = []
    finished: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        async with uvicorn_server(app) as (url, _):
            async with httpx.AsyncClient(base_url=url) as client:
                run_id = (await client.post("/runs", json={})).json()["run_id"]

            async def follow() -> None:
                client = httpx.AsyncClient(base_url=url, timeout=10)
                async with client, client.stream("GET", f"/runs/{run_id}/events") as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            event = json.loads(line.removeprefix("data: "))
                            kinds.append(event["kind"])
                            if event["kind"] == "run.finished":
                                finished.update(event)

            tg.start_soon(follow)
            with anyio.fail_after(5):
                await started.wait()
                while len(kinds) < 2:  # run.started and node.started have reached the follower
                    await anyio.sleep(0.01)
            began = anyio.current_time()
        # uvicorn_server set should_exit and the server has stopped
        assert anyio.current_time() - began < 4
    assert kinds == ["run.started", "node.started", "run.finished"]
    assert finished["status"] == "cancelled"
    assert stopped == ["wait_for_gate"]


def compact_app(wf: Workflow) -> FastAPI:
    app = FastAPI()
    app.include_router(workflow_router(wf, response="output"))
    return app


async def test_the_output_response_answers_run_id_status_output_and_error_only() -> None:
    async with asgi_client(compact_app(order_workflow())) as client:
        ok = await client.post("/run", json={"order_id": 7})
        failed = await client.post("/run", json={"order_id": 7, "amount": -5})
        schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert ok.status_code == 200
    body = ok.json()
    assert set(body) == {"run_id", "status", "output", "error"}
    assert (body["status"], body["output"], body["error"]) == (
        "success", {"charge": "charged 7"}, None,
    )  # fmt: skip
    assert len(body["run_id"]) == 32
    assert failed.status_code == 500
    error = failed.json()["error"]
    assert (error["type"], error["message"]) == ("ValueError", "negative amount")
    assert "raise ValueError" in error["traceback"]
    assert set(schema["RunAnswer"]["properties"]) == {"run_id", "status", "output", "error"}


async def test_the_output_response_names_an_output_json_cannot_hold() -> None:
    async with asgi_client(compact_app(odd_outputs_workflow())) as client:
        response = await client.post("/run", json={})
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "OutputError"


def test_an_unknown_response_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="response must be 'result' or 'output'"):
        workflow_router(order_workflow(), response="nodes")  # type: ignore[arg-type]
