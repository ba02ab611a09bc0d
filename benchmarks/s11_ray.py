"""S11 Ray: what a node costs on ``RayExecutor``, on a local Ray (``num_cpus=2``).

Per-call overhead: a one-node workflow whose sync no-op node runs on Ray, run ``n`` times one
after the other, against ``ray.get(noop.remote())`` written by hand (the same Ray task); p50
and p90 of each. Map: 1,000 no-op items with ``concurrency=100``, wall time.
``python -m benchmarks.s11_ray [n]``."""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import anyio

from benchmarks._harness import save
from flowrt import Workflow


def noop() -> None:
    return None


def run(n: int = 200) -> dict[str, Any]:
    import ray

    from flowrt.ray import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        wf = Workflow("s11", executor=RayExecutor())
        wf.node(noop, name="noop")
        bare = ray.remote(noop).options(max_retries=0)
        ours: list[float] = []
        theirs: list[float] = []

        async def sample() -> None:
            for _ in range(10):  # warm-up: workers started, function exported
                await wf.run()
                ray.get(bare.remote())
            for _ in range(n):  # alternate, so drift hits both alike
                start = time.perf_counter()
                await wf.run()
                ours.append(time.perf_counter() - start)
                start = time.perf_counter()
                ray.get(bare.remote())
                theirs.append(time.perf_counter() - start)

        anyio.run(sample)
        mapped = Workflow("s11-map", executor=RayExecutor())
        mapped.map(lambda x: x, items="$.input.items", name="same", concurrency=100)
        start = time.perf_counter()
        mapped.run_sync({"items": list(range(1000))})
        map_s = time.perf_counter() - start
    finally:
        ray.shutdown()
    record = {"shape": "S11", "n": n, "flowrt": _ms(ours), "ray": _ms(theirs), "map_1000_s": map_s}
    print(f"S11 a no-op node on RayExecutor, {n} runs one after another (local Ray, 2 CPUs)")
    for side in ("flowrt", "ray"):
        fig = record[side]
        print(f"  {side:7} p50 {fig['p50_ms']:6.2f} ms  p90 {fig['p90_ms']:6.2f} ms")
    print(f"  a map of 1,000 no-op items, concurrency 100: {map_s:.2f} s")
    save(f"S11-{n}", record)
    return record


def _ms(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[max(int(len(ordered) * 0.9) - 1, 0)] * 1000,
    }


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
