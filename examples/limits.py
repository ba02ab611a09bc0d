"""Limits: one sync per customer at a time, and one LLM budget shared by every worker.

``sync-customer`` has a run limit on ``$.input.customer_id``: two workers (4 slots each) take the
queued syncs, but a customer's syncs run one after another, in submit order, while other
customers' run past them. Its ``summarize`` node calls "the LLM" under a rate limit of 20 calls
per second, shared by both workers through the store, whichever of them makes the call.

    python examples/limits.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio

from flowrt import RateLimit, RunLimit, SQLiteStore, Worker, Workflow

sync = Workflow("sync-customer", run_limit=RunLimit(key="$.input.customer_id", max_runs=1))
running: dict[int, int] = {}
most_at_once = 0
calls: list[float] = []


@sync.node
async def fetch(customer_id: int, batch: int) -> list[str]:
    global most_at_once
    running[customer_id] = running.get(customer_id, 0) + 1
    most_at_once = max(most_at_once, running[customer_id])
    await anyio.sleep(0.02)  # the customer's records, from the CRM
    running[customer_id] -= 1
    return [f"customer {customer_id} record {i} of batch {batch}" for i in range(3)]


@sync.node(
    inputs={"records": "$.fetch.output"},
    rate_limit=RateLimit("llm", limit=20, per_seconds=1.0, burst=2),
)
async def summarize(records: list[str]) -> str:
    calls.append(time.monotonic())
    return f"{len(records)} records"


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with SQLiteStore(Path(folder) / "runs.db") as store:
            for i in range(40):  # customers 1 to 5, eight syncs each
                await sync.submit({"customer_id": 1 + i % 5, "batch": i}, store=store)
            queued = await store.list_runs(status="queued")
            waiting = await store.blockers(queued[0].run_id)
            print(f"{len(queued)} syncs queued; the newest {waiting[0].describe()}")
            workers = [Worker(store, [sync], concurrency=4, poll_seconds=0.05) for _ in range(2)]
            async with anyio.create_task_group() as tg:
                for worker in workers:
                    tg.start_soon(worker.drain)
            done = await store.list_runs(status="success")
    window = max(sum(1 for t in calls if s <= t < s + 1.0) for s in calls)
    print(f"{len(done)} syncs done; at most {most_at_once} sync of one customer at once")
    print(f"{len(calls)} LLM calls, at most {window} in any second (limit 20 + burst 2)")


if __name__ == "__main__":
    anyio.run(main)
