"""The plain-asyncio baseline: a minimal hand-written DAG executor, the floor flowrt is measured
against. One task per node awaiting its dependencies' futures, results in a dict, a try/except
retry loop, ``asyncio.timeout`` per attempt when asked."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Task:
    fn: Callable[..., Awaitable[Any]]
    deps: list[str] = field(default_factory=list)
    retries: int = 0
    timeout: float | None = None
    pass_results: bool = True  # call fn with the dependencies' results, or just wait for them


async def execute(dag: dict[str, Task]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    futures = {name: loop.create_future() for name in dag}
    results: dict[str, Any] = {}

    async def run(name: str, task: Task) -> None:
        args = [await futures[dep] for dep in task.deps]
        if not task.pass_results:
            args = []
        for attempt in range(task.retries + 1):
            try:
                if task.timeout is None:
                    output = await task.fn(*args)
                else:
                    async with asyncio.timeout(task.timeout):
                        output = await task.fn(*args)
                break
            except Exception:
                if attempt == task.retries:
                    raise
        results[name] = output
        futures[name].set_result(output)

    async with asyncio.TaskGroup() as tg:
        for name, task in dag.items():
            tg.create_task(run(name, task))
    return results


async def map_items(
    fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any], concurrency: int
) -> list[Any]:
    """``concurrency`` workers over the items; each item's result is recorded as the envelope a
    map's output must hold (``{status, output, error}``), a failed item's too, and the others go
    on."""
    items = list(items)
    results: list[Any] = [None] * len(items)
    pending = iter(range(len(items)))

    async def worker() -> None:
        for i in pending:
            try:
                results[i] = {"status": "success", "output": await fn(items[i]), "error": None}
            except Exception as exc:
                error = {"type": type(exc).__name__, "message": str(exc)}
                results[i] = {"status": "failure", "output": None, "error": error}

    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, len(items))):
            tg.create_task(worker())
    return results
