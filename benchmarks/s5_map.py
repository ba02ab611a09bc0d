"""S5 map: N items, at most 100 at a time."""

from __future__ import annotations

import sys
from typing import Any

from benchmarks._harness import compare
from benchmarks.baseline import map_items
from flowrt import ErrorHandling, Workflow

CONCURRENCY = 100


async def double(item: int) -> int:
    return item * 2


def run(n: int = 10_000, repeats: int = 5) -> dict[str, Any]:
    wf = Workflow("s5")
    wf.map(
        double,
        items="$.input.items",
        concurrency=CONCURRENCY,
        error_handling=ErrorHandling.ignore(),
    )
    wf.validate()
    items = list(range(n))
    return compare(
        "S5",
        f"map, concurrency {CONCURRENCY}",
        n,
        lambda: wf.run({"items": items}),
        lambda: map_items(double, items, CONCURRENCY),
        repeats=repeats,
    )


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
