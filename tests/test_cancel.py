"""Cancel means cancelled: a caller's cancellation is stored ``cancelled`` whatever the run was
doing, and nothing but an explicit resume continues it; a stored run can be cancelled from
anywhere (Python, the CLI, HTTP), on both stores."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import open_store, until
from fastapi import FastAPI

import flowrt
from flowrt import (
    ErrorHandling,
    RunCancelled,
    RunEnded,
    RunNotFound,
    SQLiteStore,
    Worker,
    Workflow,
    cancel_run,
    resume_due,
)
from flowrt.fastapi import workflow_router
from flowrt.postgres import PostgresStore

pytestmark = pytest.mark.anyio
FAR = time.time() + 10 * 86400  # a "now" at which every retry wait is long due


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A store whose owners heartbeat every 0.1 s and park waits of 0.2 s or more."""
    settings = {"heartbeat_seconds": 0.1, "park_after_seconds": 0.2}
    async with open_store(request.param, request, tmp_path / "runs.db", **settings) as opened:
        yield opened


async def status_of(store: Any, run_id: str) -> str | None:
    run = await store.load_run(run_id)
    return None if run is None else str(run.status)


async def is_status(store: Any, run_id: str, status: str) -> bool:
    return await status_of(store, run_id) == status


def flaky_workflow(store: Any, calls: list[int], interval: float = 1.2) -> Workflow:
    """One node that fails its first attempts and waits ``interval`` before each retry."""
    wf = Workflow("flaky", store=store)
    policy = ErrorHandling(max_retries=3, retry_interval_seconds=interval)

    @wf.node(error_handling=policy)
    async def flaky() -> str:
        calls.append(flowrt.current().attempt)
        if len(calls) == 1:
            raise ConnectionError("down")
        return "up"

    return wf


async def test_a_run_cancelled_in_a_parked_retry_wait_is_never_continued(store: Any) -> None:
    calls: list[int] = []
    wf = flaky_workflow(store, calls)
    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(wf.run, run_id="p"))
        await until(lambda: is_status(store, "p", "waiting"), what="the parked retry wait")
        tg.cancel_scope.cancel()  # the caller cancels the run
    stored = await store.load_run("p")
    assert stored.status == "cancelled"
    assert stored.error["type"] == "Cancelled"
    assert stored.owner is None
    assert await resume_due(store, [wf], now=FAR) == []
    assert await Worker(store, [wf], poll_seconds=0.01).drain() == 0
    assert calls == [1]  # the node never ran again
    assert await status_of(store, "p") == "cancelled"
    result = await wf.resume("p")  # only an explicit resume continues it, at attempt 2
    assert (result.status, result["flaky"].attempts, calls) == ("success", 2, [1, 2])


@pytest.mark.parametrize("seed", range(12))
async def test_a_caller_cancel_at_any_moment_is_stored_cancelled(tmp_path: Path, seed: int) -> None:
    chooser = random.Random(seed)
    calls: list[str] = []
    with SQLiteStore(tmp_path / "runs.db", park_after_seconds=0.05) as store:
        wf = Workflow("busy", store=store)
        retry = ErrorHandling(max_retries=5, retry_interval_seconds=0.06)
        for name in "abcd":

            @wf.node(name=name, error_handling=retry)
            async def step(name: str = name) -> str:
                calls.append(name)
                await anyio.sleep(0.01)
                if chooser.random() < 0.4:
                    raise ConnectionError(name)
                return name

        await store.upgrade()  # the file set up before the clock starts
        with anyio.move_on_after(chooser.uniform(0.0, 0.3)):
            await wf.run(run_id="r")
        status = await status_of(store, "r")
        if status == "success":  # the run ended before the cancel: nothing to check
            return
        assert status in ("cancelled", None)  # None: cancelled before it was stored (busy host)
        ran = len(calls)
        assert await resume_due(store, [wf], now=FAR) == []
        assert await Worker(store, [wf], poll_seconds=0.01).drain() == 0
        assert len(calls) == ran


async def test_cancel_a_queued_run_at_once(store: Any) -> None:
    calls: list[int] = []
    wf = flaky_workflow(store, calls)
    run_id = await wf.submit()
    assert await wf.cancel(run_id, reason="not needed") == "cancelled"
    stored = await store.load_run(run_id)
    assert stored.status == "cancelled"
    assert stored.error["message"] == "not needed"
    assert stored.error["by"]  # who asked
    assert await Worker(store, [wf], poll_seconds=0.01).drain() == 0
    assert calls == []
    with pytest.raises(RunCancelled, match="not needed"):
        await wf.result(run_id, timeout=5)
    assert await cancel_run(store, run_id) == "cancelled"  # twice is not an error


async def test_cancel_an_ended_or_unknown_run_is_refused(store: Any) -> None:
    wf = Workflow("done", store=store)
    wf.node(lambda: 1, name="one")
    result = await wf.run()
    with pytest.raises(RunEnded, match="has ended"):
        await cancel_run(store, result.run_id)
    with pytest.raises(RunNotFound) as missing:
        await wf.cancel("nope")
    assert isinstance(missing.value, LookupError)
    assert (await store.load_run(result.run_id)).status == "success"


async def test_a_running_run_is_stopped_by_its_owner_within_a_heartbeat(store: Any) -> None:
    cleaned: list[str] = []
    wf = Workflow("long", store=store)

    @wf.node
    async def long() -> None:
        try:
            await anyio.sleep(60)
        finally:
            cleaned.append("finally")

    outcome: list[BaseException] = []

    async def run() -> None:
        try:
            await wf.run(run_id="L")
        except RunCancelled as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await until(lambda: is_status(store, "L", "running"), what="the run to start")
        asked = time.monotonic()
        assert await wf.cancel("L", reason="operator said so") == "requested"
        await until(lambda: outcome, what="the owner to stop the run")
        took = time.monotonic() - asked
    assert took < store.heartbeat_seconds + 1 + 2  # heartbeat + 1 s, with room for a busy host
    assert cleaned == ["finally"]
    (cancelled,) = outcome
    assert cancelled.reason == "operator said so"
    stored = await store.load_run("L")
    assert (stored.status, stored.error["message"]) == ("cancelled", "operator said so")
    assert stored.owner is None
    assert stored.cancel is None


async def test_a_run_on_a_worker_is_cancelled_and_not_taken_again(store: Any) -> None:
    started: list[int] = []
    wf = Workflow("worked", store=store)

    @wf.node
    async def slow() -> None:
        started.append(1)
        await anyio.sleep(60)

    run_id = await wf.submit()
    async with anyio.create_task_group() as tg:
        tg.start_soon(Worker(store, [wf], poll_seconds=0.02).serve)
        await until(lambda: started, what="the worker to start the run")
        assert await cancel_run(store, run_id, reason="stop") == "requested"
        await until(lambda: is_status(store, run_id, "cancelled"), what="the worker to stop")
        await anyio.sleep(0.2)  # the worker keeps polling: it must not take the run again
        tg.cancel_scope.cancel()
    assert started == [1]


async def test_a_plain_run_holding_a_long_retry_wait_is_cancelled_by_request(
    store: Any,
) -> None:
    calls: list[int] = []
    wf = flaky_workflow(store, calls, interval=60)
    outcome: list[BaseException] = []

    async def run() -> None:
        with pytest.raises(RunCancelled) as raised:
            await wf.run(run_id="W")
        outcome.append(raised.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await until(lambda: is_status(store, "W", "waiting"), what="the retry wait")
        assert await wf.cancel("W") == "requested"
        await until(lambda: outcome, what="the owner to stop")
    assert await status_of(store, "W") == "cancelled"
    assert calls == [1]


async def test_a_cancel_request_that_comes_after_the_end_changes_nothing(store: Any) -> None:
    wf = Workflow("quick", store=store)
    wf.node(lambda: 1, name="one")
    result = await wf.run(run_id="q")
    with pytest.raises(RunEnded):
        await wf.cancel("q")
    again = await wf.run(run_id="q")
    assert (again.status, result.status) == ("success", "success")


def http_app(wf: Workflow, store: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(workflow_router(wf, store=store, worker=False))
    return app


async def test_cancel_over_http(store: Any) -> None:
    wf = Workflow("web", store=store)
    wf.node(lambda: 1, name="one")
    transport = httpx.ASGITransport(app=http_app(wf, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        run_id = (await client.post("/runs", json={})).json()["run_id"]
        answer = await client.post(f"/runs/{run_id}/cancel", json={"reason": "dup"})
        assert (answer.status_code, answer.json()) == (
            200,
            {"run_id": run_id, "outcome": "cancelled"},
        )
        assert (await client.post(f"/runs/{run_id}/cancel")).status_code == 200  # twice
        assert (await client.get(f"/runs/{run_id}")).json()["status"] == "cancelled"
        assert (await client.post("/runs/nope/cancel")).status_code == 404
        done = (await wf.run()).run_id
        ended = await client.post(f"/runs/{done}/cancel")
        assert ended.status_code == 409
        assert "has ended" in ended.json()["detail"]
    stored = await store.load_run(run_id)
    assert stored.error["message"] == "dup"
    assert "POST" in stored.error["by"]


async def test_cancel_over_http_of_a_running_run_is_accepted(store: Any) -> None:
    wf = Workflow("web-long", store=store)

    @wf.node
    async def long() -> None:
        await anyio.sleep(60)

    transport = httpx.ASGITransport(app=http_app(wf, store))
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            with pytest.raises(RunCancelled):
                await wf.run(run_id="H")

        tg.start_soon(run)
        await until(lambda: is_status(store, "H", "running"), what="the run to start")
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answer = await client.post("/runs/H/cancel")
        assert (answer.status_code, answer.json()["outcome"]) == (202, "requested")
        await until(lambda: is_status(store, "H", "cancelled"), what="the owner to stop")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_cancel_from_the_cli(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowrt.cli import main as cli

    where = (
        str(tmp_path / "runs.db") if kind == "sqlite" else request.getfixturevalue("postgres_url")
    )

    async def prepare() -> tuple[str, str]:
        with SQLiteStore(where) if kind == "sqlite" else PostgresStore(where) as store:
            wf = Workflow("cli", store=store)
            wf.node(lambda: 1, name="one")
            return await wf.submit(), (await wf.run()).run_id

    queued, ended = anyio.run(prepare)
    assert cli(["runs", "cancel", queued, "--reason", "typo", "--store", where]) == 0
    assert capsys.readouterr().out == f"run {queued} cancelled\n"
    assert cli(["runs", "cancel", queued, "--store", where]) == 0  # twice: not an error
    assert cli(["runs", "cancel", "nope", "--store", where]) == 1
    assert cli(["runs", "cancel", ended, "--store", where]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in errors] == ["flowrt", "flowrt"]
    assert "no run 'nope'" in errors[0]
    assert "has ended (success)" in errors[1]
    assert cli(["runs", "show", queued, "--store", where]) == 0
    assert "cancelled" in capsys.readouterr().out


async def test_a_run_cancelled_after_it_was_listed_due_is_not_resumed(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowrt._store.owners import owner_id
    from flowrt._store.records import RunRow

    calls: list[int] = []
    wf = flaky_workflow(store, calls)
    row = RunRow("d", "flaky", "{}", "running", "2026-12-06T00:00:00+00:00")
    assert (await store.claim("d", owner_id(), new=row)).outcome == "created"
    row.status, row.retry_due = "waiting", 1.0  # parked in a retry wait, long due
    await store.write("d", 1, 1, [], row, release=True)
    listed = await store.due_runs(now=FAR)
    assert [run.run_id for run in listed] == ["d"]
    assert await cancel_run(store, "d") == "cancelled"  # between the listing and the claim

    async def stale(now: float | None = None) -> list[Any]:
        return listed

    monkeypatch.setattr(store, "due_runs", stale)
    assert await resume_due(store, [wf]) == []
    assert await status_of(store, "d") == "cancelled"
    assert calls == []
