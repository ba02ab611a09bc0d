"""A worker process for tests/test_pg_restart.py: ``python restart_app.py URL EXECUTIONS``.

Runs of ``chain10`` (ten nodes in a row, 20 ms each) whose every node call appends ``run node
pid`` to the EXECUTIONS file (the nodes never touch the database: what the test sees of a
restart is flowrt's own handling of it). The lease (15 s) outlasts the test's outages, so no
run changes hands: each node must execute exactly once. Serves until SIGTERM."""

from __future__ import annotations

import os
import sys
import time

import anyio

from flowrt import Worker, Workflow, current
from flowrt.postgres import PostgresStore

URL, EXECUTIONS = sys.argv[1], sys.argv[2]


def execute(name: str) -> str:
    line = f"{current().run_id} {name} {os.getpid()}\n".encode()
    fd = os.open(EXECUTIONS, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    time.sleep(0.02)
    return name


def build() -> Workflow:
    wf = Workflow("chain10")
    previous = None
    for i in range(10):
        name = f"n{i}"
        depends = [] if previous is None else [previous]
        previous = wf.node(lambda name=name: execute(name), name=name, depends=depends)
    return wf


async def main() -> None:
    store = PostgresStore(URL, lease_seconds=15.0, heartbeat_seconds=0.2)
    async with store:
        await Worker(store, [build()], concurrency=10, poll_seconds=0.2).serve()


if __name__ == "__main__":
    anyio.run(main)
