"""The crash harness's workflow: 30 nodes (slow async nodes, nodes that fail once, sync thread
nodes, a map, a chain, a Choice and its join), each call appended to a calls file.

    python tests/crash_app.py STORE CALLS RUN_ID [LEASE]

runs (or resumes, or returns) run RUN_ID, waiting while another owner's lease is live, and
prints its RunResult as JSON. The store's lease is short (0.5 s) so a killed owner's run can
be taken over quickly. With LEASE (seconds), the store has that lease and the run is taken at
once or never: another live owner exits 3 (RunInProgress), without waiting.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import anyio

from flowrt import Condition, ErrorHandling, RunInProgress, SQLiteStore, Workflow

INPUT = {"items": [1, 2, 3, 4, 5]}
LEASE = 0.5


class Calls:
    """The append-only calls file: one line per call of a node (or map item)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def mark(self, name: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{name}\n".encode())
        finally:
            os.close(fd)

    def count(self, name: str) -> int:
        try:
            with open(self.path, encoding="utf-8") as file:
                return sum(line.strip() == name for line in file)
        except FileNotFoundError:
            return 0


def build(store: SQLiteStore, calls: Calls) -> Workflow:
    wf = Workflow("crashy", store=store, output={"report": "$.report.output"})
    once = ErrorHandling(max_retries=2, retry_interval_seconds=0.1)

    @wf.node
    async def src() -> int:
        calls.mark("src")
        return 5

    for i in range(6):  # slow async nodes

        async def slow(n: int, i: int = i) -> int:
            calls.mark(f"slow{i}")
            await anyio.sleep(0.03 * (i + 1))
            return n + i

        wf.node(slow, name=f"slow{i}", inputs={"n": "$.src.output"})
    for i in range(3):  # nodes that fail at their first call ever, then succeed

        async def flaky(i: int = i) -> str:
            first = calls.count(f"flaky{i}") == 0
            calls.mark(f"flaky{i}")
            if first:
                raise ConnectionError(f"flaky{i} is down")
            return "ok"

        wf.node(flaky, name=f"flaky{i}", depends=["src"], error_handling=once)
    for i in range(6):  # sync nodes in worker threads

        def blocking(n: int, i: int = i) -> int:
            calls.mark(f"th{i}")
            time.sleep(0.02)
            return n * 10

        source = f"$.slow{i}.output" if i < 4 else "$.items.output[0].output"
        wf.node(blocking, name=f"th{i}", inputs={"n": source})

    @wf.map(items="$.input.items", concurrency=2, depends=["src"])
    async def items(item: int) -> int:
        calls.mark(f"items[{item}]")
        await anyio.sleep(0.02)
        return item * item

    previous = "flaky0"
    for i in range(6):  # a chain

        async def link(x: Any, i: int = i) -> str:
            calls.mark(f"c{i}")
            await anyio.sleep(0.01)
            return f"{x}>{i}"

        wf.node(link, name=f"c{i}", inputs={"x": f"$.{previous}.output"})
        previous = f"c{i}"
    route = wf.choice("route", {"ok": Condition("$.flaky1.output", "==", "ok"), "no": None})

    @wf.node(depends=[route["ok"]])
    async def yes() -> str:
        calls.mark("yes")
        return "yes"

    @wf.node(depends=[route["no"]])
    async def no() -> str:
        calls.mark("no")
        return "no"

    @wf.node(depends=[yes, no], trigger="any")
    async def join() -> str:
        calls.mark("join")
        return "joined"

    @wf.node(inputs={"chain": "$.c5.output", "joined": "$.join.output"})
    async def gather(chain: str, joined: str) -> str:
        calls.mark("gather")
        return f"{chain}|{joined}"

    @wf.node(
        depends=[f"th{i}" for i in range(6)] + ["flaky2", "slow5"],
        inputs={"squares": "$.items.output[*].output", "gathered": "$.gather.output"},
    )
    async def final(squares: list[int], gathered: str) -> dict[str, Any]:
        calls.mark("final")
        return {"squares": squares, "gathered": gathered}

    @wf.node(inputs={"final": "$.final.output", "t": "$.th0.output"})
    def report(final: dict[str, Any], t: int) -> dict[str, Any]:
        calls.mark("report")
        return {**final, "t": t}

    return wf


async def main(path: str, calls_path: str, run_id: str, lease: str | None = None) -> None:
    seconds = LEASE if lease is None else float(lease)
    with SQLiteStore(path, lease_seconds=seconds, heartbeat_seconds=0.1) as store:
        wf = build(store, Calls(calls_path))
        while True:
            try:
                result = await wf.run(INPUT, run_id=run_id)
                break
            except RunInProgress:  # a killed owner's lease has not expired yet
                if lease is not None:
                    sys.exit(3)
                await anyio.sleep(0.05)
    print(result.model_dump_json())


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:5])
