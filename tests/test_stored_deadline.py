"""A run's deadline is part of the run: stored with it and applied by whichever process
executes it (a worker, a resume, a router's background run), each execution with its whole
length; ``Worker(timeout=)`` and ``flowrt worker --timeout`` give runs stored without one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import until
from fastapi import FastAPI

from flowrt import SQLiteStore, Worker, Workflow
from flowrt.fastapi import workflow_router

pytestmark = pytest.mark.anyio
FLOWRT = str(Path(sys.executable).parent / "flowrt")


@pytest.fixture
def store(any_store: Any) -> Any:
    return any_store


def sleeper(store: Any, seconds: float) -> Workflow:
    wf = Workflow("sleeper", store=store)

    @wf.node
    async def nap() -> str:
        await anyio.sleep(seconds)
        return "rested"

    return wf


async def test_a_submitted_runs_deadline_is_applied_by_the_worker(store: Any) -> None:
    wf = sleeper(store, 30)
    run_id = await wf.submit(timeout=0.3)
    assert (await store.load_run(run_id)).timeout == 0.3
    start = time.monotonic()
    await Worker(store, [wf], poll_seconds=0.01).drain()
    assert time.monotonic() - start < 20  # not the node's 30 s
    result = await wf.result(run_id, timeout=5)
    assert result.status == "failure"
    assert result.error.message == "workflow 'sleeper' timed out after 0.3s"


async def test_a_workers_timeout_is_the_default_and_a_runs_own_wins(store: Any) -> None:
    wf = sleeper(store, 0.5)
    own, default = await wf.submit(timeout=30), await wf.submit()
    await Worker(store, [wf], poll_seconds=0.01, timeout=0.2).drain()
    assert (await wf.result(own, timeout=5)).status == "success"  # its own 30 s
    failed = await wf.result(default, timeout=5)
    assert failed.error.message == "workflow 'sleeper' timed out after 0.2s"


async def test_a_resume_applies_the_stored_deadline_from_the_resume(store: Any) -> None:
    wf = sleeper(store, 30)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: wf.run(run_id="r", timeout=1.5))
        await until(lambda: _status(store, "r", "running"), what="the run to start")
        tg.cancel_scope.cancel()
    await anyio.sleep(1.6)  # past the first deadline: a resume still has its whole length
    start = time.monotonic()
    result = await wf.resume("r")
    took = time.monotonic() - start
    assert result.error.message == "workflow 'sleeper' timed out after 1.5s"
    assert took >= 1.4


async def _status(store: Any, run_id: str, status: str) -> bool:
    run = await store.load_run(run_id)
    return run is not None and run.status == status


async def test_a_routers_background_runs_carry_its_timeout(store: Any) -> None:
    wf = sleeper(store, 30)
    app = FastAPI()
    app.include_router(workflow_router(wf, store=store, worker=False, timeout=0.25))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        run_id = (await client.post("/runs", json={})).json()["run_id"]
    assert (await store.load_run(run_id)).timeout == 0.25
    await Worker(store, [wf], poll_seconds=0.01).drain()  # any worker applies it
    result = await wf.result(run_id, timeout=5)
    assert result.error.message == "workflow 'sleeper' timed out after 0.25s"


APP = """
import anyio
from flowrt import Workflow

wf = Workflow("sleeper")

@wf.node
async def nap() -> str:
    await anyio.sleep(30)
    return "rested"
"""


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.timeout(120)
async def test_flowrt_worker_timeout(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    db = tmp_path / "runs.db"
    with SQLiteStore(db) as store:
        run_id = await sleeper(store, 30).submit()
        command = [FLOWRT, "worker", "app.py:wf", "--store", str(db), "--timeout", "0.3"]
        command += ["--poll", "0.05"]
        process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE)
        try:
            await until(lambda: _status(store, run_id, "failure"), timeout=60, what="the end")
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
        run = await store.load_run(run_id)
        assert run.error["message"] == "workflow 'sleeper' timed out after 0.3s"
