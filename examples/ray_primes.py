"""A CPU-bound map on Ray: count the primes below a bound for each item, in pure Python (it
holds the GIL, so threads take turns), once with worker threads and once on a local Ray with
one worker process per CPU. Needs ``pip install -e '.[ray]'``.

    python examples/ray_primes.py [items] [bound]
"""

from __future__ import annotations

import os
import sys
import time

import ray

from flowrt import Workflow
from flowrt.ray import RayExecutor


def count_primes(bound: int) -> int:
    """Primes below ``bound``, by trial division (deliberately CPU-bound Python)."""
    found = 0
    for n in range(2, bound):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            found += 1
    return found


def primes_workflow(executor: object) -> Workflow:
    wf = Workflow("primes", executor=executor)  # type: ignore[arg-type]
    wf.map(count_primes, items="$.input.bounds", name="count", concurrency=os.cpu_count())
    return wf


def timed(wf: Workflow, bounds: list[int]) -> tuple[float, list[int]]:
    start = time.perf_counter()
    result = wf.run_sync({"bounds": bounds}).raise_for_status()
    return time.perf_counter() - start, [item["output"] for item in result.output["count"]]


def main(items: int = 8, bound: int = 60_000) -> None:
    bounds = [bound] * items
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        timed(primes_workflow(RayExecutor()), [10])  # Ray's workers started and warm
        threads, counted = timed(primes_workflow("thread"), bounds)
        on_ray, counted_on_ray = timed(primes_workflow(RayExecutor()), bounds)
    finally:
        ray.shutdown()
    assert counted == counted_on_ray
    print(f"{items} items, primes below {bound:,}: {counted[0]:,} each")
    print(f"threads: {threads:.2f} s")
    print(f"ray:     {on_ray:.2f} s ({threads / on_ray:.2f}x faster, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
