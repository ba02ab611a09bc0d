"""S10 workers: one-node durable runs through a ``Worker`` process, on PostgreSQL and SQLite.

Throughput: ``n`` runs are submitted first, then one worker process (concurrency 100) is started
and timed until every run has ended; runs/s, on each store, and their ratio. Latency: with the
worker idle, one run submitted at a time, 50 times; from just before ``submit`` to the node's
start (the node returns ``time.time()``: one host, one clock), p50 and p90.

PostgreSQL: ``FLOWRT_BENCH_POSTGRES_DSN``, else a throwaway server started like the tests do
(``initdb``/``pg_ctl`` on PATH). ``python -m benchmarks.s10_workers [n]``.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import anyio

from benchmarks._harness import save
from flowrt import SQLiteStore, Worker, Workflow

ROOT = Path(__file__).resolve().parent.parent


def workflow() -> Workflow:
    wf = Workflow("s10")

    @wf.node
    async def started() -> float:
        return time.time()

    return wf


def open_store(where: str) -> Any:
    if where.startswith("postgresql://"):
        from flowrt.postgres import PostgresStore

        return PostgresStore(where, max_connections=20)
    return SQLiteStore(where)


async def _serve(where: str) -> None:
    async with open_store(where) as store:
        await Worker(store, [workflow()], concurrency=100, poll_seconds=0.05).serve()


def _worker(where: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "benchmarks.s10_workers", "serve", where]
    return subprocess.Popen(command, cwd=ROOT)


async def _submit_all(where: str, n: int) -> list[str]:
    async with open_store(where) as store:
        wf = workflow()
        return [await wf.submit(store=store) for _ in range(n)]


def _ended(where: str) -> int:
    """How many runs have succeeded (one cheap query: the timing must not load the store)."""
    query = "SELECT count(*) FROM {} WHERE status = 'success'"
    if where.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(where) as db:
            row = db.execute(query.format("flowrt_runs")).fetchone()  # type: ignore[arg-type]
    else:
        with closing(sqlite3.connect(where)) as db:
            row = db.execute(query.format("runs")).fetchone()
    return int(row[0]) if row else 0


def _wait_all(where: str, n: int) -> None:
    deadline = time.monotonic() + 300
    while _ended(where) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n} runs not done in 300 s")
        time.sleep(0.02)


def throughput(where: str, n: int) -> float:
    ids = anyio.run(_submit_all, where, n)
    start = time.perf_counter()
    worker = _worker(where)
    try:
        _wait_all(where, len(ids))
        elapsed = time.perf_counter() - start
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return n / elapsed


async def _latencies(where: str, samples: int) -> list[float]:
    out = []
    async with open_store(where) as store:
        wf = workflow()
        await anyio.sleep(1.0)  # the worker is up and idle
        for _ in range(samples):
            before = time.time()
            run_id = await wf.submit(store=store)
            result = await wf.result(run_id, store=store, timeout=30)
            out.append(result.output["started"] - before)
            await anyio.sleep(0.1)  # idle again
    return out


def latency(where: str, samples: int = 50) -> list[float]:
    worker = _worker(where)
    try:
        return anyio.run(_latencies, where, samples)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _postgres(stack: ExitStack) -> str:
    dsn = os.environ.get("FLOWRT_BENCH_POSTGRES_DSN")
    if dsn:
        return dsn
    sys.path.insert(0, str(ROOT / "tests"))
    from pg_server import fresh_database, postgres_server

    server = stack.enter_context(postgres_server())
    return fresh_database(server, "bench")


def run(n: int = 2000, samples: int = 50) -> dict[str, Any]:
    with ExitStack() as stack:
        url = _postgres(stack)
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        sqlite = str(Path(folder) / "runs.db")
        record: dict[str, Any] = {"shape": "S10", "n": n}
        for name, where in (("postgres", url), ("sqlite", sqlite)):
            rate = throughput(where, n)
            waits = sorted(latency(where, samples))
            record[name] = {
                "runs_per_s": rate,
                "latency_p50_ms": statistics.median(waits) * 1000,
                "latency_p90_ms": waits[max(int(len(waits) * 0.9) - 1, 0)] * 1000,
            }
    record["time_ratio"] = record["sqlite"]["runs_per_s"] / record["postgres"]["runs_per_s"]
    print(f"S10 one-node durable runs through one worker process (n = {n:,})")
    print(f"  {'':10} {'runs/s':>8} {'p50 ms':>8} {'p90 ms':>8}")
    for name in ("postgres", "sqlite"):
        fig = record[name]
        print(
            f"  {name:10} {fig['runs_per_s']:8.0f} {fig['latency_p50_ms']:8.1f} "
            f"{fig['latency_p90_ms']:8.1f}"
        )
    print(f"  PostgreSQL takes {record['time_ratio']:.2f}x the time of SQLite")
    save(f"S10-{n}", record)
    return record


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        anyio.run(_serve, sys.argv[2])
    else:
        run(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
