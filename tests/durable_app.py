"""A workflow for the crash test: 20 quick nodes, a blocker that hangs when FLOWRT_BLOCK is set,
and a final node after all of them. Every call appends the node's name to a calls file.

    python tests/durable_app.py STORE CALLS RUN_ID     # runs it (and hangs, with FLOWRT_BLOCK=1)
"""

from __future__ import annotations

import functools
import os
import sys

import anyio

from flowrt import SQLiteStore, Workflow

QUICK = 20


def mark(calls: str, name: str) -> None:
    with open(calls, "a", encoding="utf-8") as file:
        file.write(name + "\n")


async def quick(calls: str, i: int) -> dict[str, int]:
    mark(calls, f"q{i}")
    return {"i": i}


async def blocker(calls: str) -> str:
    mark(calls, "blocker")
    if os.environ.get("FLOWRT_BLOCK"):
        await anyio.sleep(3600)
    return "unblocked"


async def final(calls: str) -> str:
    mark(calls, "final")
    return "done"


def build(store: SQLiteStore, calls: str) -> Workflow:
    wf = Workflow("crashy", store=store)
    quick_nodes = [wf.node(functools.partial(quick, calls, i), name=f"q{i}") for i in range(QUICK)]
    wf.node(functools.partial(blocker, calls), name="blocker", depends=quick_nodes[:1])
    wf.node(functools.partial(final, calls), name="final", depends=["blocker", *quick_nodes])
    return wf


if __name__ == "__main__":
    store_path, calls_path, run_id = sys.argv[1:4]
    with SQLiteStore(store_path) as opened:
        workflow = build(opened, calls_path)
        anyio.run(lambda: workflow.run({}, run_id=run_id))
