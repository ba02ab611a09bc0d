"""S15 run limits and rate limits, on PostgreSQL.

Claim throughput: ``n`` one-node runs submitted, then drained by one worker (concurrency 10),
of a workflow with ``RunLimit(key="$.input.k")`` over 100 keys, against the same workflow
without a limit; interleaved, 5 rounds after a warm-up; runs/s (median) and the ratio with its
spread (lowest over highest, highest over lowest).

Rate accuracy: 4 processes, each running 8 plain runs at a time of a node under
``RateLimit("shared", limit=50, per_seconds=1)`` for ``seconds``. Each process records the
turn of every permit it is granted (on the database's clock, as the store computed it) and
each attempt's start (logged on the database's clock once the attempt runs: later, by the
local wait's and the log's own latency). Given: the largest count in any 1 s window of each,
and the use (permits per second over the limit).

``python -m benchmarks.s15_limits [n] [seconds]``; PostgreSQL as in S10.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import psycopg

from benchmarks._harness import save
from benchmarks.s10_workers import _postgres
from flowrt import RateLimit, RunLimit, Worker, Workflow
from flowrt._store import rates as _rates
from flowrt._store.claims import Dialect
from flowrt._store.postgres_db import db_now
from flowrt.postgres import PostgresStore

ROOT = Path(__file__).resolve().parent.parent
KEYS = 100
LIMITED = Workflow("s15_limited", run_limit=RunLimit("$.input.k"))
LIMITED.node(lambda k: k, name="work")
FREE = Workflow("s15_free")
FREE.node(lambda k: k, name="work")


async def _drain(store: PostgresStore, wf: Workflow, n: int, round_: int) -> float:
    for i in range(n):
        await wf.submit({"k": i % KEYS}, store=store, run_id=f"{wf.name}-{round_}-{i}")
    start = time.perf_counter()
    done = await Worker(store, [wf], concurrency=10, poll_seconds=0.05).drain()
    assert done == n, (done, n)
    return n / (time.perf_counter() - start)


async def claims(url: str, n: int) -> dict[str, float]:
    async with PostgresStore(url, max_connections=20) as store:
        await _drain(store, LIMITED, 50, -1)
        await _drain(store, FREE, 50, -1)  # warm-up
        limited, free = [], []
        for round_ in range(5):
            limited.append(await _drain(store, LIMITED, n, round_))
            free.append(await _drain(store, FREE, n, round_))
    return {
        "limited_runs_per_s": statistics.median(limited),
        "free_runs_per_s": statistics.median(free),
        "ratio": statistics.median(limited) / statistics.median(free),
        "low": min(limited) / max(free),
        "high": max(limited) / min(free),
    }


class _Recording(PostgresStore):
    """The store, recording each granted permit's turn on the database's clock."""

    turns: list[float]

    async def take_permit(
        self, limit: tuple[str, str], shape: tuple[float, int, float | None]
    ) -> tuple[float, bool]:
        def take(db: psycopg.Connection[Any]) -> tuple[float, bool]:
            with db.transaction():
                now = db_now(db)
                wait, granted = _rates.take_permit(db, _SQL, limit, shape, now)
                self.turns.append(now + wait)
                return wait, granted

        return await self._call(take)


_SQL = Dialect("flowrt_runs", "%s", " FOR UPDATE")


async def _saturate(url: str, seconds: float) -> None:
    wf = Workflow("s15_rated")
    log = "INSERT INTO s15_permits (kind, pid, at) VALUES (%s, %s, %s)"

    def record(kind: str, at: float | None = None) -> None:
        with psycopg.connect(url, autocommit=True) as db:
            at_sql = at if at is not None else db_now(db)
            db.execute(log, (kind, os.getpid(), at_sql))

    @wf.node(rate_limit=RateLimit("shared", limit=50, per_seconds=1.0))
    async def call() -> None:
        await anyio.to_thread.run_sync(record, "start")

    deadline = time.monotonic() + seconds
    async with _Recording(url) as store:
        store.turns, wf.store = [], store

        async def loop() -> None:
            while time.monotonic() < deadline:
                await wf.run()

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(loop)
        for turn in store.turns:
            await anyio.to_thread.run_sync(record, "turn", turn)


def _early(starts: list[float], turns: list[float]) -> int:
    """How many starts came before their turns (one start per turn, both on the database's
    clock). Starts are not matched to turns: each start follows its own turn, so the k-th
    start in time follows the k-th turn in time; this counts the k where it does not."""
    pairs = zip(sorted(starts), sorted(turns), strict=True)
    return sum(1 for start, turn in pairs if start < turn - 1e-5)


def _most_in_a_second(times: list[float]) -> int:
    """The most times in any window [t, t + 1 s), to 10 µs: turns one interval apart come from
    adding the interval to epoch seconds, which rounds by ~0.1 µs each time."""
    times, most, j = sorted(times), 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + 1.0 - 1e-5:
            j += 1
        most = max(most, j - i)
    return most


def rate_accuracy(url: str, seconds: float) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE IF NOT EXISTS s15_permits (kind TEXT, pid INTEGER, at FLOAT8)")
    command = [sys.executable, "-m", "benchmarks.s15_limits", "saturate", url, str(seconds)]
    procs = [subprocess.Popen(command, cwd=ROOT) for _ in range(4)]
    for proc in procs:
        assert proc.wait(timeout=seconds + 120) == 0
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT kind, at FROM s15_permits").fetchall()
    turns = [at for kind, at in rows if kind == "turn"]
    starts = [at for kind, at in rows if kind == "start"]
    span = max(turns) - min(turns)
    return {
        "processes": 4,
        "permits": len(turns),
        "most_turns_in_1s": _most_in_a_second(turns),
        "most_starts_in_1s": _most_in_a_second(starts),
        "starts_before_their_turn": _early(starts, turns),
        "use": len(turns) / span / 50 if span > 0 else 0.0,
    }


def run(n: int = 500, seconds: float = 30.0) -> dict[str, Any]:
    with ExitStack() as stack:
        url = _postgres(stack)
        record: dict[str, Any] = {"shape": "S15", "n": n, "seconds": seconds}
        record["claims"] = anyio.run(claims, url, n)
        record["rate"] = rate_accuracy(url, seconds)
    fig, rate = record["claims"], record["rate"]
    print(f"S15 claim throughput, PostgreSQL, one worker: {n} runs per round")
    print(
        f"  run limit over {KEYS} keys {fig['limited_runs_per_s']:7.0f}/s, none "
        f"{fig['free_runs_per_s']:7.0f}/s: {fig['ratio']:.2f}x ({fig['low']:.2f}-{fig['high']:.2f})"
    )
    print(
        f"S15 rate limit 50/s, 4 processes, {seconds:g}s: {rate['permits']} permits; most in any "
        f"1 s: turns {rate['most_turns_in_1s']}, starts {rate['most_starts_in_1s']}; "
        f"use {rate['use']:.1%}"
    )
    save(f"S15-{n}", record)
    return record


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "saturate":
        anyio.run(_saturate, sys.argv[2], float(sys.argv[3]))
    else:
        run(*(int(arg) for arg in sys.argv[1:2]), *(float(arg) for arg in sys.argv[2:3]))
