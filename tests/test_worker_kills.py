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
from typing import Any

import anyio
import pytest

psycopg = pytest.importorskip("psycopg")

from flowrt import Workflow  # noqa: E402
from flowrt.postgres import PostgresStore  # noqa: E402

HERE = Path(__file__).resolve().parent
# Worker processes on a loaded machine: each test waits for its conditions up to 120 s itself.
pytestmark = pytest.mark.timeout(240)


def tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(
            "CREATE TABLE executions (run_id TEXT, node TEXT, pid INTEGER, attempt INTEGER, "
            "at DOUBLE PRECISION DEFAULT extract(epoch from clock_timestamp()))"
        )
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
        executions = db.execute("SELECT run_id, node, pid FROM executions ORDER BY at").fetchall()
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


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not in {timeout}s: {what}"
        time.sleep(0.02)


def executions_of(url: str, pid: int | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        if pid is None:
            return db.execute("SELECT run_id, node, pid, attempt, at FROM executions").fetchall()
        query = "SELECT run_id, node, pid, attempt, at FROM executions WHERE pid = %s"
        return db.execute(query, (pid,)).fetchall()


def stored_state(url: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as db:
        runs = db.execute(
            "SELECT run_id, status, claim, output FROM flowrt_runs ORDER BY run_id"
        ).fetchall()
        batches = db.execute("SELECT count(*) FROM flowrt_node_batches").fetchone()
    return tuple(runs), batches


def test_a_killed_workers_run_is_continued_within_its_lease_and_two_polls(
    postgres_url: str,
) -> None:
    tables(postgres_url)
    workers = [start(postgres_url, "slow10", 5) for _ in range(2)]
    try:
        time.sleep(1.0)  # both up and idle
        submit(postgres_url, "slow10", 1)
        wait_until(lambda: len(executions_of(postgres_url)) >= 2, 30, "two nodes ran")
        holder = executions_of(postgres_url)[0][2]
        (victim,) = [worker for worker in workers if worker.pid == holder]
        (other,) = [worker for worker in workers if worker.pid != holder]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_at = time.time()
        wait_until(lambda: bool(executions_of(postgres_url, other.pid)), 30, "the other continued")
        resumed_at = min(at for *_, at in executions_of(postgres_url, other.pid))
        wait_for(postgres_url, 1, timeout=30)
    finally:
        stop(workers)
    lease, poll = 1.0, 0.2  # tests/worker_app.py's
    assert resumed_at - killed_at < lease + 2 * poll + 0.5  # tolerance: a real clock, 2 cores


def test_a_stopped_worker_that_lost_its_lease_changes_nothing_when_it_wakes(
    postgres_url: str,
) -> None:
    tables(postgres_url)
    submit(postgres_url, "chain10", 3)
    sleeper = start(postgres_url, "chain10", 5)
    other = None
    try:
        wait_until(lambda: len(executions_of(postgres_url, sleeper.pid)) >= 2, 30, "it works")
        sleeper.send_signal(signal.SIGSTOP)
        other = start(postgres_url, "chain10", 5)  # takes the runs over once the lease expires
        wait_for(postgres_url, 3, timeout=60)
        before = stored_state(postgres_url)
        sleeper.send_signal(signal.SIGCONT)
        time.sleep(2.0)  # it wakes, finishes the node it was in, and is refused
        after = stored_state(postgres_url)
    finally:
        sleeper.send_signal(signal.SIGCONT)
        stop([sleeper] + ([other] if other else []))
    assert after == before
    assert {status for _, status, _, _ in after[0]} == {"success"}


def test_a_parked_retry_continues_at_attempt_2_after_every_worker_was_killed(
    postgres_url: str,
) -> None:
    tables(postgres_url)
    submit(postgres_url, "parked", 1)
    workers = [start(postgres_url, "parked", 5) for _ in range(2)]
    wait_until(lambda: len(executions_of(postgres_url)) == 1, 30, "attempt 1 ran")
    wait_until(lambda: statuses(postgres_url).get("waiting") == 1, 10, "the run is parked, waiting")
    for worker in workers:  # all of them, during the 2 s wait
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    fresh = start(postgres_url, "parked", 5)
    try:
        wait_for(postgres_url, 1, timeout=30)
    finally:
        stop([fresh])
    attempts = [(pid, attempt) for _, _, pid, attempt, _ in executions_of(postgres_url)]
    assert attempts == [(attempts[0][0], 1), (fresh.pid, 2)]
