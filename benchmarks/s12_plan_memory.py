"""S12 plan memory: bytes per node that a workflow's definition and its compiled plan hold
(traced allocations that stay), for the S1 fan-out and the S2 chain, beside the hand-written
executor's DAG of the same shape (its ``Task`` per node)."""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

from benchmarks import s1_fanout, s2_chain
from benchmarks._harness import save


def _kept(build: Callable[[], Any]) -> tuple[Any, int]:
    """What ``build()`` returns and the bytes it keeps allocated."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = build()
        return built, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def measure(shape: str, n: int) -> dict[str, float]:
    module = {"S1": s1_fanout, "S2": s2_chain}[shape]
    wf, definition = _kept(lambda: module.flowrt_case(n))
    _, plan = _kept(wf.compiled)
    _, baseline = _kept(lambda: module.baseline_case(n))
    return {"definition": definition / n, "plan": plan / n, "baseline": baseline / n}


def run(n: int = 10_000) -> dict[str, Any]:
    record = {shape: measure(shape, n) for shape in ("S1", "S2")}
    print(f"S12 plan memory at {n:,} nodes, bytes per node")
    print(f"  {'':4} {'definition':>10} {'plan':>8} {'hand-written DAG':>17}")
    for shape, figures in record.items():
        print(
            f"  {shape:4} {figures['definition']:10.0f} {figures['plan']:8.0f} "
            f"{figures['baseline']:17.0f}"
        )
    save(f"S12-{n}", {"n": n, **record})
    return record


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
