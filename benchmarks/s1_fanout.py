"""S1 fan-out/fan-in: 1 root -> N independent no-op nodes -> 1 join reading all N outputs."""

from __future__ import annotations

import sys
from typing import Any

from benchmarks._harness import compare
from benchmarks.baseline import Task, execute
from flowrt import Workflow


async def noop() -> int:
    return 1


async def join(*values: int, **named: int) -> int:
    return len(values) + len(named)


def flowrt_case(n: int) -> Workflow:
    wf = Workflow("s1")
    root = wf.node(noop, name="root")
    for i in range(n):
        wf.node(noop, name=f"n{i}", depends=[root])
    wf.node(join, name="join", inputs={f"v{i}": f"$.n{i}.output" for i in range(n)})
    return wf


def baseline_case(n: int) -> dict[str, Task]:
    dag = {"root": Task(noop)}
    dag |= {f"n{i}": Task(noop, ["root"], pass_results=False) for i in range(n)}
    dag["join"] = Task(join, [f"n{i}" for i in range(n)])
    return dag


def run(n: int = 10_000, repeats: int = 5) -> dict[str, Any]:
    wf = flowrt_case(n)
    wf.validate()
    dag = baseline_case(n)
    return compare(
        "S1", "fan-out/fan-in", n, lambda: wf.run(), lambda: execute(dag), repeats=repeats
    )


if __name__ == "__main__":
    for size in map(int, sys.argv[1:] or ["1000", "10000"]):
        run(size)
