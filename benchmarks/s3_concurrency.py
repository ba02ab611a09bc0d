"""S3 concurrency: N independent nodes each sleeping 0.1 s (ideal wall time 0.1 s)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from benchmarks._harness import compare
from benchmarks.baseline import Task, execute
from flowrt import Workflow

SLEEP = 0.1


async def sleeper() -> None:
    await asyncio.sleep(SLEEP)


def flowrt_case(n: int) -> Workflow:
    wf = Workflow("s3")
    for i in range(n):
        wf.node(sleeper, name=f"n{i}")
    return wf


def run(n: int = 10_000, repeats: int = 5) -> dict[str, Any]:
    wf = flowrt_case(n)
    wf.validate()
    dag = {f"n{i}": Task(sleeper) for i in range(n)}
    return compare(
        "S3",
        f"concurrency, {SLEEP:g} s sleeps",
        n,
        lambda: wf.run(),
        lambda: execute(dag),
        repeats=repeats,
    )


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
