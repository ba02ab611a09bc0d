"""S9 small runs: the fixed cost of one run. ``runs`` runs of a 1-node workflow, or of a
10-node chain, one after the other, against the same DAG run by the hand-written executor."""

from __future__ import annotations

import sys
from typing import Any

from benchmarks._harness import compare
from benchmarks.baseline import execute
from benchmarks.s2_chain import baseline_case, flowrt_case


def run(nodes: int = 1, runs: int = 2000, repeats: int = 7) -> dict[str, Any]:
    wf = flowrt_case(nodes)
    wf.validate()
    dag = baseline_case(nodes)

    async def ours() -> None:
        for _ in range(runs):
            await wf.run({"x": 0})

    async def theirs() -> None:
        for _ in range(runs):
            await execute(dag)

    title = f"small runs: {runs:,} runs of {nodes} node{'s' if nodes > 1 else ''} (n = runs)"
    return compare(f"S9-{nodes}", title, runs, ours, theirs, repeats=repeats, warmup=2)


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
