"""S14 sub-workflows: what a sub-workflow node costs over the same nodes inlined, and a map
of children through workers.

Overhead: a parent whose one node is a sub-workflow of a 3-node chain, against one workflow
with the same 3 nodes inlined; ``runs`` runs of each, interleaved (5 rounds after a warm-up),
in memory and on SQLite; the median time per run and the ratio with its spread (lowest over
highest, highest over lowest).

Map of children: a parent mapping a one-node child over ``n`` items (concurrency 50) on
PostgreSQL with 2 worker processes (concurrency 100 each); runs/s of the children, from
submit to the parent's end.

``python -m benchmarks.s14_children [runs] [n]``; PostgreSQL as in S10.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio

from benchmarks._harness import save
from benchmarks.s10_workers import _postgres, open_store
from flowrt import SQLiteStore, Worker, Workflow

ROOT = Path(__file__).resolve().parent.parent


def chain(wf: Workflow, prefix: str = "") -> Workflow:
    wf.node(lambda: 1, name=f"{prefix}a")
    wf.node(lambda a: a + 1, name=f"{prefix}b", inputs={"a": f"$.{prefix}a.output"})
    wf.node(lambda b: b + 1, name=f"{prefix}c", inputs={"b": f"$.{prefix}b.output"})
    return wf


CHILD = chain(Workflow("s14_child"))
NESTED = Workflow("s14_nested")
NESTED.subworkflow(CHILD, name="child")
INLINED = chain(Workflow("s14_inlined"))
ONE = Workflow("s14_one")
ONE.node(lambda: 1, name="work")
MAPPED = Workflow("s14_map")
MAPPED.map(ONE, name="each", items="$.input.items", concurrency=50)


async def _time(wf: Workflow, runs: int, store: Any) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        await wf.run({}, store=store)
    return (time.perf_counter() - start) / runs


async def _overhead(runs: int, store: Any) -> dict[str, float]:
    await _time(NESTED, 10, store), await _time(INLINED, 10, store)  # warm-up
    nested, inlined = [], []
    for _ in range(5):
        nested.append(await _time(NESTED, runs, store))
        inlined.append(await _time(INLINED, runs, store))
    return {
        "nested_ms": statistics.median(nested) * 1000,
        "inlined_ms": statistics.median(inlined) * 1000,
        "ratio": statistics.median(nested) / statistics.median(inlined),
        "low": min(nested) / max(inlined),
        "high": max(nested) / min(inlined),
    }


async def overhead(runs: int, folder: Path) -> dict[str, Any]:
    memory = await _overhead(runs, None)
    async with SQLiteStore(folder / "s14.db") as store:
        sqlite = await _overhead(max(runs // 10, 10), store)
    return {"memory": memory, "sqlite": sqlite}


async def _serve(where: str) -> None:
    async with open_store(where) as store:
        await Worker(store, [MAPPED, ONE], concurrency=100, poll_seconds=0.05).serve()


def children_rate(where: str, n: int) -> float:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.s14_children", "serve", where], cwd=ROOT
        )
        for _ in range(2)
    ]
    try:
        return anyio.run(_map_once, where, n)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)


async def _map_once(where: str, n: int) -> float:
    async with open_store(where) as store:
        await anyio.sleep(2)  # the workers are up
        start = time.perf_counter()
        run_id = await MAPPED.submit({"items": [{} for _ in range(n)]}, store=store)
        result = await MAPPED.result(run_id, store=store, timeout=900)
        assert result.status == "success", result.error
        return n / (time.perf_counter() - start)


def run(runs: int = 200, n: int = 1000) -> dict[str, Any]:
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        record: dict[str, Any] = {"shape": "S14", "runs": runs, "n": n}
        record.update(anyio.run(overhead, runs, folder))
        record["postgres_children_per_s"] = children_rate(_postgres(stack), n)
    print("S14 a sub-workflow node over the same 3 nodes inlined (median ms per run)")
    for name in ("memory", "sqlite"):
        fig = record[name]
        print(
            f"  {name:8} {fig['nested_ms']:8.3f} / {fig['inlined_ms']:8.3f} = "
            f"{fig['ratio']:.2f}x ({fig['low']:.2f}-{fig['high']:.2f})"
        )
    print(
        f"  map of {n:,} children, PostgreSQL, 2 workers: {record['postgres_children_per_s']:.0f}/s"
    )
    save(f"S14-{n}", record)
    return record


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        anyio.run(_serve, sys.argv[2])
    else:
        args = [int(arg) for arg in sys.argv[1:3]]
        run(*args)
