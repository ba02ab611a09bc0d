"""``make bench`` / ``python -m benchmarks``: every shape, one table each."""

from __future__ import annotations

from benchmarks import (
    fastapi_load,
    s1_fanout,
    s2_chain,
    s3_concurrency,
    s4_retries,
    s5_map,
    s6_timeouts,
    s8_store,
    s12_plan_memory,
    s16_direct,
)


def main() -> None:
    s16_direct.run(10)
    s1_fanout.run(1000)
    s1_fanout.run(10_000)
    s2_chain.run(1000)
    s3_concurrency.run(10_000)
    s4_retries.run(1000)
    s5_map.run(10_000)
    s6_timeouts.run(10_000)
    s8_store.run(1000)
    s12_plan_memory.run(10_000)
    fastapi_load.run(500)  # uvicorn with httptools and uvloop
    fastapi_load.run(500, http="h11", loop="asyncio")


if __name__ == "__main__":
    main()
