"""S6 timeouts: S1's fan-out with a per-attempt timeout on every node (the cancel-scope cost)."""

from __future__ import annotations

import sys
from typing import Any

from benchmarks._harness import compare
from benchmarks.baseline import Task, execute
from flowrt import ErrorHandling, Workflow

TIMEOUT = 10.0


async def noop() -> int:
    return 1


def run(n: int = 10_000, repeats: int = 5) -> dict[str, Any]:
    wf = Workflow("s6")
    policy = ErrorHandling(timeout_seconds=TIMEOUT)
    for i in range(n):
        wf.node(noop, name=f"n{i}", error_handling=policy)
    wf.validate()
    dag = {f"n{i}": Task(noop, timeout=TIMEOUT) for i in range(n)}
    return compare(
        "S6", "per-attempt timeouts", n, lambda: wf.run(), lambda: execute(dag), repeats=repeats
    )


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
