"""S4 retries: N nodes each failing twice then succeeding, retry interval 0."""

from __future__ import annotations

import functools
import sys
from typing import Any

from benchmarks._harness import compare
from benchmarks.baseline import Task, execute
from flowrt import ErrorHandling, Workflow


def flaky_nodes(n: int) -> tuple[list[Any], dict[int, int]]:
    calls: dict[int, int] = {}

    async def flaky(i: int) -> int:
        calls[i] = calls.get(i, 0) + 1
        if calls[i] <= 2:
            raise ConnectionError("transient")
        return i

    return [functools.partial(flaky, i) for i in range(n)], calls


def run(n: int = 1000, repeats: int = 5) -> dict[str, Any]:
    fns, calls = flaky_nodes(n)
    wf = Workflow("s4")
    policy = ErrorHandling(max_retries=2, retry_interval_seconds=0)
    for i, fn in enumerate(fns):
        wf.node(fn, name=f"n{i}", error_handling=policy)
    wf.validate()
    dag = {f"n{i}": Task(fn, retries=2) for i, fn in enumerate(fns)}

    async def ours() -> None:
        calls.clear()
        await wf.run()

    async def theirs() -> None:
        calls.clear()
        await execute(dag)

    return compare("S4", "retries, 2 failures per node", n, ours, theirs, repeats=repeats)


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
