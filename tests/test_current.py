"""``flowrt.current()`` follows Python's context rules: it answers in the node's own task and
in everything that inherits its context, with the attempt (and map item) that started it."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import anyio.to_thread
import pytest
from process_fns import context_key

import flowrt
from flowrt import ErrorHandling, FlowError, RunContext, Workflow

pytestmark = pytest.mark.anyio


def ask() -> RunContext:
    return flowrt.current()


async def ask_async() -> RunContext:
    await anyio.sleep(0)
    return flowrt.current()


async def run_node(fn: Any, **options: Any) -> Any:
    wf = Workflow("ctx")
    wf.node(fn, name="n", **options)
    result = await wf.run(run_id="r")
    assert result.status == "success", result["n"].error
    return result["n"].output


async def test_in_an_anyio_worker_thread() -> None:
    async def n() -> str:
        return (await anyio.to_thread.run_sync(ask)).idempotency_key

    assert await run_node(n) == "r:n"


async def test_in_an_anyio_task_group_the_node_starts() -> None:
    async def n() -> list[str]:
        seen: list[str] = []

        async def child() -> None:
            seen.append((await ask_async()).node)

        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
            tg.start_soon(child)
        return seen

    assert await run_node(n) == ["n", "n"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_in_asyncio_to_thread_create_task_and_task_group() -> None:
    async def n() -> dict[str, str]:
        out = {"to_thread": (await asyncio.to_thread(ask)).node}
        out["task"] = (await asyncio.get_running_loop().create_task(ask_async())).node
        async with asyncio.TaskGroup() as tg:
            child = tg.create_task(ask_async())
        out["task_group"] = child.result().node
        return out

    assert await run_node(n) == {"to_thread": "n", "task": "n", "task_group": "n"}


async def test_in_a_sync_nodes_thread_with_each_attempts_number() -> None:
    attempts: list[int] = []

    def n() -> int:
        attempts.append(flowrt.current().attempt)
        if len(attempts) < 3:
            raise ConnectionError("again")
        return attempts[-1]

    policy = ErrorHandling(max_retries=2, retry_interval_seconds=0)
    assert await run_node(n, error_handling=policy) == 3
    assert attempts == [1, 2, 3]


async def test_in_a_thread_started_by_a_retried_async_attempt() -> None:
    seen: list[int] = []

    async def n() -> int:
        seen.append((await anyio.to_thread.run_sync(ask)).attempt)
        if len(seen) < 2:
            raise ConnectionError("again")
        return seen[-1]

    policy = ErrorHandling(max_retries=1, retry_interval_seconds=0)
    assert await run_node(n, error_handling=policy) == 2
    assert seen == [1, 2]


async def test_in_map_items_each_with_its_index() -> None:
    wf = Workflow("ctx")

    @wf.map(items=[10, 20, 30], concurrency=2)
    async def m(item: int) -> str:
        return (await anyio.to_thread.run_sync(ask)).idempotency_key

    @wf.map(items=[1, 2], error_handling=ErrorHandling(max_retries=1, timeout_seconds=5))
    def s(item: int) -> str:
        return flowrt.current().idempotency_key

    result = await wf.run(run_id="r")
    assert [e["output"] for e in result["m"].output] == ["r:m[0]", "r:m[1]", "r:m[2]"]
    assert [e["output"] for e in result["s"].output] == ["r:s[0]", "r:s[1]"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.timeout(60)
async def test_in_a_process_executors_worker() -> None:
    assert await run_node(context_key, executor="process") == "r:n@1"


async def test_outside_a_node_it_raises_and_nothing_leaks_between_nodes() -> None:
    wf = Workflow("ctx")

    @wf.node
    async def first() -> str:
        return flowrt.current().node

    @wf.node(depends=[first])
    async def second() -> str:
        return flowrt.current().node

    result = await wf.run()
    assert (result["first"].output, result["second"].output) == ("first", "second")
    with pytest.raises(FlowError, match="only available inside a node"):
        flowrt.current()


def test_a_finished_run_holds_no_context_of_its_nodes() -> None:
    """Each node's ``flowrt.current()`` is set for its call and reset after it: a result, kept
    as long as the caller likes, holds no token of it (a token holds the context's previous
    value), whether the node succeeded or failed."""
    import contextvars
    import gc

    wf = Workflow("held")
    wf.node(lambda: 1, name="a")

    async def fails(x: int) -> None:
        raise ValueError(x)

    wf.node(fails, name="b", inputs={"x": "$.a.output"}, error_handling={"behavior": "return"})

    async def reads(x: Any) -> str:
        return flowrt.current().node

    wf.node(reads, name="c", inputs={"x": "$.a.output"})
    result = wf.run_sync()
    assert result.status == "success"  # (its node results not built: it holds their states)
    states = [state for state in result._nodes_from.states if state is not None]
    assert len(states) == 3
    held = [thing for thing in gc.get_referents(*states) if type(thing) is contextvars.Token]
    assert held == []
    assert result["c"].output == "c"
