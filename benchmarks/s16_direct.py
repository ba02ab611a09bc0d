"""S16 direct awaits: the price of running ten awaits as a flowrt workflow. ``runs`` runs of a
10-node chain (each node awaits ``asyncio.sleep(0)``: one loop turn, like a call whose answer
is ready, and returns its input + 1) against the same ten coroutines awaited one after the
other in plain code. With ``FLOWRT_BENCH_YIELD=0`` the nodes return without awaiting anything
(the cost of the machinery alone, against almost nothing)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from benchmarks._harness import compare
from flowrt import Workflow


async def step(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


async def bare(x: int) -> int:
    return x + 1


def chain(fn: Any, nodes: int) -> Workflow:
    wf = Workflow("s16")
    wf.node(fn, name="n0", inputs={"x": "$.input.x"})
    for i in range(1, nodes):
        wf.node(fn, name=f"n{i}", inputs={"x": f"$.n{i - 1}.output"})
    return wf


def run(nodes: int = 10, runs: int = 3000, repeats: int = 9) -> dict[str, Any]:
    yields = os.environ.get("FLOWRT_BENCH_YIELD", "1") != "0"
    fn = step if yields else bare
    wf = chain(fn, nodes)
    wf.validate()

    async def ours() -> None:
        for _ in range(runs):
            await wf.run({"x": 0})

    async def theirs() -> None:
        for _ in range(runs):
            x = 0
            for _ in range(nodes):
                x = await fn(x)

    what = "awaiting asyncio.sleep(0)" if yields else "not awaiting"
    title = f"{runs:,} runs of a {nodes}-node chain, each node {what} (n = runs)"
    shape = "S16" if yields else "S16-bare"
    return compare(shape, title, runs, ours, theirs, repeats=repeats, warmup=2, against="direct")


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
