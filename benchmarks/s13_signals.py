"""S13 signals: how fast a signal wakes a parked run, and what parked runs cost a worker.

Latency: one worker process (concurrency 10) idle; a run parks on its wait (stored
``waiting``, owned by nobody); from just before ``send_signal`` to the node after the wait
(which returns ``time.time()``: one host, one clock), ``samples`` times; p50 and p90 on
PostgreSQL (LISTEN/NOTIFY wakes the worker) and SQLite (the worker polls every
``poll_seconds``, 1 s by default, so the goal there is p50 <= poll_seconds + 50 ms).

Parked runs: ``parked`` runs are submitted and parked on their waits by a worker; then a
worker process with ``concurrency=10`` runs ``n`` one-node runs, timed, in that store and in
an empty one (runs/s, and their ratio); then the ``parked`` signals are sent and timed until
every parked run has ended.

``python -m benchmarks.s13_signals [samples] [parked]``; PostgreSQL as in S10.
"""

from __future__ import annotations

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
from benchmarks.s10_workers import _postgres, open_store
from flowrt import Worker, Workflow

ROOT = Path(__file__).resolve().parent.parent
POLL = 1.0


def approval() -> Workflow:
    wf = Workflow("s13_wait")
    wf.wait("approve")

    @wf.node(depends=["approve"])
    async def woke() -> float:
        return time.time()

    return wf


def one_node() -> Workflow:
    wf = Workflow("s13_one")

    @wf.node
    async def work() -> int:
        return 1

    return wf


async def _serve(where: str) -> None:
    async with open_store(where) as store:
        store.poll_seconds = POLL
        worker = Worker(store, [approval(), one_node()], concurrency=10, poll_seconds=POLL)
        await worker.serve()


def _worker(where: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "benchmarks.s13_signals", "serve", where]
    return subprocess.Popen(command, cwd=ROOT)


async def _parked(store: Any, run_ids: list[str]) -> None:
    """Wait until every run of ``run_ids`` is parked: stored ``waiting`` with no owner."""
    pending = set(run_ids)
    while pending:
        runs = await store.list_runs(limit=len(run_ids) + 10, status="waiting")
        pending -= {run.run_id for run in runs if run.owner is None}
        await anyio.sleep(0.02)


async def _latencies(where: str, samples: int) -> list[float]:
    out = []
    async with open_store(where) as store:
        wf = approval()
        for _ in range(samples):
            run_id = await wf.submit(store=store)
            await _parked(store, [run_id])
            await anyio.sleep(0.05)  # the worker is idle again
            before = time.time()
            await wf.signal(run_id, "approve", {"ok": True}, store=store)
            result = await wf.result(run_id, store=store, timeout=60)
            out.append(result.output["woke"] - before)
    return out


def latency(where: str, samples: int) -> dict[str, float]:
    worker = _worker(where)
    try:
        waits = sorted(anyio.run(_latencies, where, samples))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return {
        "samples": samples,
        "p50_ms": statistics.median(waits) * 1000,
        "p90_ms": waits[max(int(len(waits) * 0.9) - 1, 0)] * 1000,
    }


async def _submit(where: str, wf: Workflow, n: int) -> list[str]:
    async with open_store(where) as store:
        return [await wf.submit(store=store) for _ in range(n)]


def _count(where: str, workflow: str, status: str) -> int:
    """How many runs of ``workflow`` have ``status`` (``waiting``: parked, owned by nobody)."""
    query = "SELECT count(*) FROM {} WHERE workflow = {} AND status = {}"
    parked = " AND owner IS NULL" if status == "waiting" else ""
    if where.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(where) as db:
            sql = query.format("flowrt_runs", "%s", "%s") + parked
            row = db.execute(sql, (workflow, status)).fetchone()  # type: ignore[arg-type]
    else:
        with closing(sqlite3.connect(where)) as db:
            row = db.execute(query.format("runs", "?", "?") + parked, (workflow, status)).fetchone()
    return int(row[0]) if row else 0


def _until(where: str, workflow: str, status: str, n: int) -> None:
    deadline = time.monotonic() + 900
    while _count(where, workflow, status) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n} runs of {workflow} not {status} in 900 s")
        time.sleep(0.05)


def _rate(where: str, n: int) -> float:
    """Runs/s of ``n`` one-node runs through a worker process with concurrency 10."""
    before = _count(where, "s13_one", "success")
    anyio.run(_submit, where, one_node(), n)
    start = time.perf_counter()
    worker = _worker(where)
    try:
        _until(where, "s13_one", "success", before + n)
        return n / (time.perf_counter() - start)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


async def _send_all(where: str, run_ids: list[str]) -> None:
    async with open_store(where) as store:
        wf = approval()
        for run_id in run_ids:
            await wf.signal(run_id, "approve", {"ok": True}, store=store)


def parked_runs(where: str, parked: int, n: int) -> dict[str, float]:
    """Runs/s of one-node runs without and with ``parked`` runs parked on waits, and the
    seconds to send their signals and see them all end."""
    empty = _rate(where, n)
    ids = anyio.run(_submit, where, approval(), parked)
    worker = _worker(where)
    try:
        _until(where, "s13_wait", "waiting", parked)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    loaded = _rate(where, n)
    worker = _worker(where)
    try:
        start = time.perf_counter()
        anyio.run(_send_all, where, ids)
        sent = time.perf_counter() - start
        _until(where, "s13_wait", "success", parked)
        ended = time.perf_counter() - start
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return {
        "parked": parked,
        "runs_per_s_empty": empty,
        "runs_per_s_with_parked": loaded,
        "ratio": loaded / empty,
        "send_s": sent,
        "all_ended_s": ended,
    }


def run(samples: int = 200, parked: int = 10_000, n: int = 1000) -> dict[str, Any]:
    with ExitStack() as stack:
        url = _postgres(stack)
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        record: dict[str, Any] = {"shape": "S13", "samples": samples, "parked": parked}
        for name, where in (("postgres", url), ("sqlite", str(Path(folder) / "runs.db"))):
            count = samples if name == "postgres" else max(samples // 5, 10)
            record[name] = {"latency": latency(where, count)}
            record[name].update(parked_runs(where, parked, n))
    _print(record, n)
    save(f"S13-{parked}", record)
    return record


def _print(record: dict[str, Any], n: int) -> None:
    print(f"S13 signals: signal to the next node, and {record['parked']:,} parked runs")
    print(f"  {'':10} {'samples':>7} {'p50 ms':>8} {'p90 ms':>8}   runs/s empty / parked (ratio)")
    for name in ("postgres", "sqlite"):
        fig = record[name]
        lat = fig["latency"]
        print(
            f"  {name:10} {lat['samples']:7} {lat['p50_ms']:8.1f} {lat['p90_ms']:8.1f}   "
            f"{fig['runs_per_s_empty']:6.0f} / {fig['runs_per_s_with_parked']:6.0f} "
            f"({fig['ratio']:.2f}x)"
        )
        print(
            f"  {'':10} {fig['parked']:,} signals sent in {fig['send_s']:.1f} s, "
            f"all ended in {fig['all_ended_s']:.1f} s ({n:,} one-node runs timed)"
        )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        anyio.run(_serve, sys.argv[2])
    else:
        args = [int(arg) for arg in sys.argv[1:3]]
        run(*args)
