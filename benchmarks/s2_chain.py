"""S2 chain: N nodes in a row, each passing its input + 1 on."""

from __future__ import annotations

import sys
from typing import Any

from benchmarks._harness import compare
from benchmarks.baseline import Task, execute
from flowrt import Workflow


async def inc(x: int) -> int:
    return x + 1


def flowrt_case(n: int) -> Workflow:
    wf = Workflow("s2")
    wf.node(inc, name="n0", inputs={"x": "$.input.x"})
    for i in range(1, n):
        wf.node(inc, name=f"n{i}", inputs={"x": f"$.n{i - 1}.output"})
    return wf


def baseline_case(n: int) -> dict[str, Task]:
    async def first() -> int:
        return await inc(0)

    dag = {"n0": Task(first)}
    dag |= {f"n{i}": Task(inc, [f"n{i - 1}"]) for i in range(1, n)}
    return dag


def run(n: int = 1000, repeats: int = 5) -> dict[str, Any]:
    wf = flowrt_case(n)
    wf.validate()
    dag = baseline_case(n)
    return compare(
        "S2", "chain", n, lambda: wf.run({"x": 0}), lambda: execute(dag), repeats=repeats
    )


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
