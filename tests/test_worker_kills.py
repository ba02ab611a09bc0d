"""Workers as processes on one PostgreSQL store, killed at random (seeded) moments: every run
ends ``success`` with each node's success recorded once, every idempotency-keyed effect written
once, and no node executed again unless the process that executed it first was killed; then
four processes of 25 slots over 1,000 one-node runs execute each run exactly once."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import anyio
import pytest

psycopg = pytest.importorskip("psycopg")

from flowrt import Workflow  # noqa: E402
from flowrt.postgres import PostgresStore  # noqa: E402

HERE = Path(__file__).resolve().parent


def tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE executions (run_id TEXT, node TEXT, pid INTEGER)")
        db.execute("CREATE TABLE effects (key TEXT PRIMARY KEY)")


def start(url: str, shape: str, concurrency: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "worker_app.py"), url, shape, str(concurrency)],
        stderr=subprocess.DEVNULL,
    )


def submit(url: str, shape: str, count: int) -> list[str]:
    async def enqueue() -> list[str]:
        async with PostgresStore(url) as store:
            wf = Workflow(shape)  # submit needs the name only: the workers hold the nodes
            return [await wf.submit({}, store=store, run_id=f"{shape}-{i}") for i in range(count)]

    return anyio.run(enqueue)


def statuses(url: str) -> dict[str, int]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT status, count(*) FROM flowrt_runs GROUP BY status").fetchall()
    return dict(rows)


def wait_for(url: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while statuses(url).get("success", 0) < count:
        assert time.monotonic() < deadline, f"runs not done in {timeout}s: {statuses(url)}"
        time.sleep(0.1)


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("seed", [1, 2])
def test_killed_workers_lose_nothing_and_repeat_no_stored_success(
    postgres_url: str, seed: int
) -> None:
    rng = random.Random(seed)
    tables(postgres_url)
    ids = submit(postgres_url, "chain10", 60)
    workers = [start(postgres_url, "chain10", 5) for _ in range(3)]
    killed: set[int] = set()
    try:
        for _ in range(6):  # a random worker SIGKILLed, and restarted, six times
            time.sleep(rng.uniform(0.2, 0.6))
            victim = rng.randrange(len(workers))
            killed.add(workers[victim].pid)
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            workers[victim] = start(postgres_url, "chain10", 5)
        wait_for(postgres_url, 60, timeout=90)
    finally:
        stop(workers)
    with psycopg.connect(postgres_url) as db:
        executions = db.execute("SELECT run_id, node, pid FROM executions").fetchall()
        effects = {key for (key,) in db.execute("SELECT key FROM effects")}
    assert statuses(postgres_url) == {"success": 60}
    assert effects == {f"{run_id}:n{i}" for run_id in ids for i in range(10)}
    by_node: dict[tuple[str, str], list[int]] = defaultdict(list)
    for run_id, node, pid in executions:
        by_node[(run_id, node)].append(pid)
    assert set(by_node) == {(run_id, f"n{i}") for run_id in ids for i in range(10)}
    for key, pids in by_node.items():  # executed again only after its executor was killed
        assert all(pid in killed for pid in pids[:-1]), (key, pids, killed)
    again = sum(len(pids) > 1 for pids in by_node.values())
    assert again > 0, "no node was interrupted: the kills missed every run"
    stored = _stored_successes(postgres_url)  # each node's success recorded once
    assert stored == {(run_id, f"n{i}"): 1 for run_id in ids for i in range(10)}
    assert killed, "the schedule killed nobody"


def _stored_successes(url: str) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    with psycopg.connect(url) as db:
        for run_id, records in db.execute("SELECT run_id, records FROM flowrt_node_batches"):
            for entry in json.loads(records):
                if entry[1] == "success":
                    counts[(run_id, entry[0])] += 1
    return dict(counts)


def test_four_worker_processes_execute_a_thousand_runs_once_each(postgres_url: str) -> None:
    tables(postgres_url)
    ids = submit(postgres_url, "one", 1000)
    workers = [start(postgres_url, "one", 25) for _ in range(4)]
    try:
        wait_for(postgres_url, 1000, timeout=120)
    finally:
        stop(workers)
    with psycopg.connect(postgres_url) as db:
        executions = db.execute("SELECT run_id, pid FROM executions").fetchall()
    assert sorted(run_id for run_id, _ in executions) == sorted(ids)  # once each
    assert len({pid for _, pid in executions}) > 1  # the work was shared
