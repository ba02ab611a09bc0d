"""Workers survive their database: a PostgreSQL server stopped and started again, idle or
under load, at several moments. Workers reconnect (LISTEN included) and log one line when an
outage starts and one when it ends, never a traceback; runs in flight go on when it is back,
none lost and none executed twice; a store-backed router answers 503 with the reason while
the store is down, and its ``/health`` says what is down."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

psycopg = pytest.importorskip("psycopg")

from fastapi import FastAPI  # noqa: E402
from pg_server import Server, own_server  # noqa: E402

from flowrt import Workflow  # noqa: E402
from flowrt.fastapi import workflow_router  # noqa: E402
from flowrt.postgres import PostgresStore  # noqa: E402

HERE = Path(__file__).resolve().parent
FLOWRT = str(Path(sys.executable).parent / "flowrt")
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def server() -> Iterator[Server]:
    if os.environ.get("FLOWRT_TEST_POSTGRES_DSN"):
        pytest.skip("the tests must stop and start a server of their own")
    with own_server() as own:
        yield own


def wait_until(check: object, timeout: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not in {timeout}s: {what}"
        time.sleep(0.05)


def statuses(url: str) -> Counter[str]:
    try:
        with psycopg.connect(url, connect_timeout=2) as db:
            return Counter(dict(db.execute("SELECT status, count(*) FROM flowrt_runs GROUP BY 1")))
    except psycopg.Error:  # down, or no schema yet
        return Counter()


def schema_made(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as db:
            db.execute("SELECT 1 FROM flowrt_runs LIMIT 1")
            return True
    except psycopg.Error:
        return False


def submit(url: str, count: int) -> list[str]:
    async def enqueue() -> list[str]:
        async with PostgresStore(url) as store:
            wf = Workflow("chain10")
            return [await wf.submit(run_id=f"r{i}", store=store) for i in range(count)]

    return anyio.run(enqueue)


def executions(path: Path) -> Counter[tuple[str, str]]:
    if not path.exists():
        return Counter()
    return Counter((run, node) for run, node, _ in map(str.split, path.read_text().splitlines()))


def finish(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    return err


class Lines:
    """A process's stderr lines, read as they come (a thread of the test's)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        self.reader = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self.reader.start()

    def _read(self, stream: Any) -> None:
        with stream:
            for line in stream:
                self.lines.append(line)

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


def test_an_idle_flowrt_worker_survives_a_restart_and_says_so_once(
    server: Server, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(
        "from flowrt import Workflow\nwf = Workflow('chain10')\nwf.node(lambda: 1, name='n0')\n"
    )
    command = [FLOWRT, "worker", "app.py:wf", "--store", server.dsn, "--poll", "0.2"]
    worker = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    err = Lines(worker)
    try:
        wait_until(lambda: schema_made(server.dsn), 60, "the worker to start")
        server.stop()  # while it is idle, LISTENing
        wait_until(lambda: err.count("cannot reach its store"), 60, "the outage's line")
        time.sleep(1.0)  # it keeps trying meanwhile, quietly
        assert worker.poll() is None, "the worker died with its database"
        server.start()
        wait_until(lambda: err.count("reached its store again"), 60, "the recovery's line")
        (run_id,) = submit(server.dsn, 1)
        wait_until(lambda: statuses(server.dsn)["success"] == 1, 60, "the run after the restart")
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        err.reader.join(timeout=10)
    assert not err.count("Traceback"), err.lines
    assert err.count("cannot reach its store") == 1, err.lines
    assert err.count("reached its store again") == 1, err.lines
    assert not err.count("error connecting"), err.lines  # not a line per reconnection attempt
    assert run_id == "r0"


@pytest.mark.parametrize("seed", [1, 2])
def test_runs_in_flight_survive_restarts_under_load(
    server: Server, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    log = tmp_path / "executions"
    ids = submit(server.dsn, 40)
    workers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "restart_app.py"), server.dsn, str(log)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for _ in range(3):  # three restarts, each at a seeded moment of the work
            target = sum(executions(log).values()) + rng.randrange(5, 60)
            wait_until(
                lambda t=target: (
                    sum(executions(log).values()) >= t or (statuses(server.dsn)["success"] == 40)
                ),
                120,
                "progress",
            )
            server.stop()
            time.sleep(rng.uniform(0.5, 2.0))
            server.start()
        wait_until(lambda: statuses(server.dsn)["success"] == 40, 120, "every run to end")
        assert all(worker.poll() is None for worker in workers), "a worker died"
    finally:
        errors = [finish(worker) for worker in workers]
    done = executions(log)
    assert set(done) == {(run, f"n{i}") for run in ids for i in range(10)}  # none lost
    assert max(done.values()) == 1, [key for key, n in done.items() if n > 1]  # none twice
    for err in errors:
        assert "Traceback" not in err
        assert err.count("cannot reach its store") <= 3 * 10  # a line per outage and owner


def test_a_router_answers_503_and_its_health_while_the_store_is_down(server: Server) -> None:
    async def scenario() -> None:
        store = PostgresStore(server.dsn)
        wf = Workflow("web")
        wf.node(lambda: 1, name="one")
        app = FastAPI()
        app.include_router(workflow_router(wf, store=store))
        transport = httpx.ASGITransport(app=app)
        async with (
            store,
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        ):
            assert (await client.get("/health")).json() == {"store": "ok", "worker": "ok"}
            await anyio.to_thread.run_sync(server.stop)
            down = await client.post("/runs", json={})
            assert down.status_code == 503
            assert "the run store cannot be reached" in down.json()["detail"]
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["store"].startswith("down: ")
            await anyio.to_thread.run_sync(server.start)
            with anyio.fail_after(60):
                while (await client.get("/health")).status_code != 200:
                    await anyio.sleep(0.1)
            run_id = (await client.post("/runs", json={})).json()["run_id"]
            assert (await wf.result(run_id, store=store, timeout=60)).status == "success"

    anyio.run(scenario)
