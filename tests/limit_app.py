"""A worker process for tests/test_limit_processes.py:
``python limit_app.py URL worker STRATEGY CONCURRENCY``: it serves workflow ``limited`` (run
limit on ``$.input.k`` with STRATEGY; its one node logs its span, start and end on the
database's clock, in table ``spans``, and sleeps ``$.input.pause`` seconds) until SIGTERM."""

from __future__ import annotations

import os
import sys

import anyio
import psycopg

from flowrt import RunLimit, Worker, Workflow, current
from flowrt.postgres import PostgresStore

URL, MODE, STRATEGY, CONCURRENCY = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def log(query: str, *params: object) -> None:
    with psycopg.connect(URL, autocommit=True) as db:
        db.execute(query, params)


def limited() -> Workflow:
    wf = Workflow("limited", run_limit=RunLimit("$.input.k", strategy=STRATEGY))  # type: ignore[arg-type]

    @wf.node
    async def work(k: int, pause: float) -> int:
        run_id = current().run_id
        start = "INSERT INTO spans (run_id, k, pid) VALUES (%s, %s, %s)"
        await anyio.to_thread.run_sync(log, start, run_id, k, os.getpid())
        try:
            await anyio.sleep(pause)
        finally:
            with anyio.CancelScope(shield=True):  # its end, even when it is cancelled
                end = "UPDATE spans SET ended = clock_timestamp() WHERE run_id = %s AND pid = %s"
                await anyio.to_thread.run_sync(log, end, run_id, os.getpid())
        return k

    return wf


async def main() -> None:
    store = PostgresStore(URL, lease_seconds=1.0, heartbeat_seconds=0.2)
    async with store:
        await Worker(store, [limited()], concurrency=CONCURRENCY, poll_seconds=0.1).serve()


if __name__ == "__main__":
    anyio.run(main)
