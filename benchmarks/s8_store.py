"""S8 durable runs: S1's fan-out (1 root -> n nodes -> join) with a SQLite run store, beside the
same workflow without one (the "baseline" column here). The store writes every node's envelope
and trace as it finishes, batched, from a worker thread."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._harness import compare
from benchmarks.s1_fanout import flowrt_case
from flowrt import SQLiteStore


def run(n: int = 1000, repeats: int = 21) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        plain = flowrt_case(n)
        durable = flowrt_case(n)
        store = SQLiteStore(Path(folder) / "runs.db")
        durable.store = store
        plain.validate()
        durable.validate()
        try:
            return compare(
                "S8",
                "store cost: fan-out with a SQLite store (baseline: same run, no store)",
                n,
                lambda: durable.run(),
                lambda: plain.run(),
                repeats=repeats,
                against="no store",
            )
        finally:
            store.close()


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
