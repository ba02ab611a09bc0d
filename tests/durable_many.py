"""One of several processes sharing one SQLite file: runs N three-node workflows in a row.

python tests/durable_many.py STORE PROCESS_NUMBER RUNS
"""

from __future__ import annotations

import sys

import anyio

from flowrt import SQLiteStore, Workflow


def build(store: SQLiteStore) -> Workflow:
    wf = Workflow("many-processes", store=store)

    @wf.node
    async def first() -> int:
        return 1

    @wf.node(depends=[first])
    async def second() -> int:
        await anyio.sleep(0.005)
        return 2

    @wf.node(depends=[first])
    def third() -> int:
        return 3

    return wf


async def main(path: str, process: int, runs: int) -> None:
    with SQLiteStore(path) as store:
        wf = build(store)
        for i in range(runs):
            result = await wf.run({"i": i}, run_id=f"p{process}-{i}")
            if result.status != "success":
                raise SystemExit(f"run {result.run_id} failed: {result.error}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
