"""A worker process for tests/test_worker_kills.py: ``python worker_app.py URL SHAPE CONCURRENCY``.

Shapes: ``chain10``, ten nodes in a row, each recording its execution (run, node, this process,
attempt) and its effect, one row keyed by ``flowrt.current().idempotency_key`` (inserted only if
absent); ``slow10``, the same with slower nodes; ``one``, a single node recording its execution;
``parked``, a node that fails its first attempt and retries after 2 s (a parked wait). Serves
until SIGTERM."""

from __future__ import annotations

import os
import sys
import time

import anyio
import psycopg

from flowrt import ErrorHandling, Worker, Workflow, current
from flowrt.postgres import PostgresStore

URL, SHAPE, CONCURRENCY = sys.argv[1], sys.argv[2], int(sys.argv[3])


def execute(name: str) -> str:
    context = current()
    with psycopg.connect(URL, autocommit=True) as db:
        db.execute(
            "INSERT INTO executions (run_id, node, pid, attempt) VALUES (%s, %s, %s, %s)",
            (context.run_id, name, os.getpid(), context.attempt),
        )
        if SHAPE == "parked" and context.attempt == 1:
            raise ConnectionError("the first attempt fails")
        if SHAPE in ("chain10", "slow10"):
            time.sleep(0.03 if SHAPE == "chain10" else 0.3)  # to be killed in the middle of
            db.execute(
                "INSERT INTO effects (key) VALUES (%s) ON CONFLICT DO NOTHING",
                (context.idempotency_key,),
            )
    return name


def build() -> Workflow:
    wf = Workflow(SHAPE)
    count = 10 if SHAPE in ("chain10", "slow10") else 1
    previous = None
    for i in range(count):
        name = f"n{i}"
        depends = [] if previous is None else [previous]
        policy = ErrorHandling(max_retries=1, retry_interval_seconds=2)
        previous = wf.node(
            lambda name=name: execute(name), name=name, depends=depends,
            error_handling=policy if SHAPE == "parked" else None,
        )  # fmt: skip
    return wf


async def main() -> None:
    store = PostgresStore(URL, lease_seconds=1.0, heartbeat_seconds=0.2)
    async with store:
        await Worker(store, [build()], concurrency=CONCURRENCY, poll_seconds=0.2).serve()


if __name__ == "__main__":
    anyio.run(main)
