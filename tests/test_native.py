"""The asyncio task group behind node tasks: structured like asyncio.TaskGroup (nothing outlives
``wait()``, cancellation and errors reach every task), without a done callback per task."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from flowrt import Workflow
from flowrt._engine.native import EAGER, LoopGroup, task_group


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Stop(BaseException):
    """Not an Exception: what a node task can let out (like KeyboardInterrupt)."""


def others() -> list[asyncio.Task[Any]]:
    """Tasks of this module's groups still alive."""
    return [task for task in asyncio.all_tasks() if "LoopGroup" in repr(task.get_coro())]


@pytest.mark.anyio
async def test_wait_returns_after_every_task_including_those_tasks_start() -> None:
    finished: list[int] = []
    group = LoopGroup()

    async def node(i: int) -> None:
        await asyncio.sleep(0.001 * i)
        if i < 3:
            group.spawn(node, i + 3)  # started while the parent already waits
        finished.append(i)

    for i in range(3):
        group.spawn(node, i)
    await group.wait()
    assert sorted(finished) == [0, 1, 2, 3, 4, 5]
    assert not others()


@pytest.mark.anyio
async def test_cancelling_the_waiter_cancels_and_awaits_every_task_then_re_raises() -> None:
    cleaned: list[int] = []

    async def node(i: int) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0)  # clean-up that needs loop turns still runs to the end
            cleaned.append(i)

    async def parent() -> None:
        async with task_group() as spawn:
            for i in range(5):
                spawn(node, i)

    waiter = asyncio.ensure_future(parent())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert sorted(cleaned) == [0, 1, 2, 3, 4]
    assert not others()


@pytest.mark.anyio
async def test_a_cancel_scope_deadline_around_the_group_is_caught_by_that_scope() -> None:
    ended: list[str] = []

    async def slow(_arg: None) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            for _ in range(3):  # the scope keeps cancelling its host meanwhile
                await asyncio.sleep(0)
            ended.append("slow")

    with anyio.move_on_after(0.01) as scope:
        async with task_group() as spawn:
            spawn(slow, None)
    assert scope.cancelled_caught
    assert ended == ["slow"]
    assert not others()


@pytest.mark.anyio
async def test_a_task_raising_a_base_exception_cancels_the_others_and_wait_raises_it() -> None:
    cancelled: list[int] = []

    async def sleeper(i: int) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    async def stopper(_: None) -> None:
        await asyncio.sleep(0.001)
        raise Stop

    group = LoopGroup()
    for i in range(3):
        group.spawn(sleeper, i)
    group.spawn(stopper, None)
    with pytest.raises(Stop):
        await group.wait()
    assert sorted(cancelled) == [0, 1, 2]
    assert not others()


@pytest.mark.anyio
async def test_several_failing_tasks_are_raised_together() -> None:
    async def fails_while_cancelled(_: None) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("b") from None

    async def fails(_: None) -> None:
        await asyncio.sleep(0.001)
        raise RuntimeError("a")

    group = LoopGroup()
    group.spawn(fails_while_cancelled, None)
    group.spawn(fails, None)
    with pytest.raises(BaseExceptionGroup) as caught:
        await group.wait()
    assert [str(exc) for exc in caught.value.exceptions] == ["a", "b"]


@pytest.mark.anyio
async def test_tasks_cancelled_before_they_start_do_not_hang_the_wait() -> None:
    started: list[int] = []

    async def node(i: int) -> None:
        started.append(i)

    group = LoopGroup()
    for i in range(3):
        group.spawn(node, i)  # on 3.12+ each has run already (eager start), up to its end
    group.abort()  # before any task had a turn (before 3.12)
    group.spawn(node, 3)  # and one started after the abort is cancelled too, on any Python
    await group.wait()
    assert started == ([0, 1, 2] if EAGER else [])
    assert not others()


@pytest.mark.anyio
async def test_a_body_that_raises_cancels_the_tasks_and_propagates() -> None:
    async def node(_: None) -> None:
        await asyncio.sleep(10)

    async def body() -> None:
        async with task_group() as spawn:
            spawn(node, None)
            raise LookupError("from the body")

    with pytest.raises(LookupError):
        await body()
    assert not others()


@pytest.mark.anyio
@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="Python 3.12+")
async def test_tasks_that_finish_eagerly_do_not_hang_the_wait() -> None:
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    finished: list[int] = []

    async def node(i: int) -> None:
        finished.append(i)

    try:
        group = LoopGroup()
        for i in range(3):
            group.spawn(node, i)
        await group.wait()
    finally:
        loop.set_task_factory(None)
    assert finished == [0, 1, 2]


def test_loop_tools_kept_for_a_loop_answer_as_found_afresh_and_free_the_loop() -> None:
    import gc
    import weakref

    from flowrt._engine import native

    async def tools() -> Any:
        first = native.loop_tools()
        again = native.loop_tools()  # kept: the same loop
        loop = asyncio.get_running_loop()
        assert again == first
        assert first[0]() == pytest.approx(loop.time(), abs=0.05)
        await first[1]()  # a checkpoint
        return weakref.ref(loop)

    gone = asyncio.run(tools())
    gc.collect()
    assert gone() is None  # the kept tools do not keep a closed loop alive
    asyncio.run(tools())  # a new loop gets tools of its own


# Eager starts (Python 3.12+; the same code runs, lazily, on 3.11) ----------------------------


@pytest.mark.anyio
async def test_a_task_starts_eagerly_on_312_and_nested_starts_wait_their_turn() -> None:
    order: list[str] = []
    group = LoopGroup()

    async def inner(_: None) -> None:
        order.append("inner")

    async def outer(_: None) -> None:
        order.append("outer")
        group.spawn(inner, None)  # from inside an eager start: it waits for a loop turn
        order.append("outer spawned")

    group.spawn(outer, None)
    order.append("spawned")
    await group.wait()
    if EAGER:
        assert order == ["outer", "outer spawned", "spawned", "inner"]
    else:
        assert order == ["spawned", "outer", "outer spawned", "inner"]
    assert not others()


@pytest.mark.anyio
async def test_a_deep_graph_of_eager_starts_does_not_grow_the_stack() -> None:
    async def at_once(x: int) -> int:
        return x

    wf = Workflow("ladder")
    wf.node(at_once, name="r0", inputs={"x": 0})
    for i in range(1, 3000):  # far beyond the recursion limit
        wf.node(at_once, name=f"r{i}", inputs={"x": f"$.r{i - 1}.output"})
        wf.node(at_once, name=f"side{i}", inputs={"x": f"$.r{i - 1}.output"})
    result = await wf.run()
    assert result.status == "success"
    assert result.output["r2999"] == 0
    assert len(result.nodes) == 5999


@pytest.mark.anyio
@pytest.mark.parametrize("failing", [0, 4, 9])
async def test_fail_fast_starts_nothing_after_the_failure_with_eager_starts(failing: int) -> None:
    log: list[str] = []
    wf = Workflow("fan", fail_fast=True)

    async def root() -> None:
        log.append("root")

    def leaf(i: int) -> Any:
        async def run() -> int:
            log.append(f"start {i}")
            if i == failing:
                log.append("failed")
                raise RuntimeError(f"leaf {i}")
            return i

        return run

    wf.node(root, name="root")
    for i in range(10):
        wf.node(leaf(i), name=f"leaf{i}", depends=["root"])
    result = await wf.run()
    assert result.status == "failure"
    assert log[log.index("failed") + 1 :] == []  # nothing started once it failed
    started = {entry.split()[1] for entry in log if entry.startswith("start")}
    for i in range(10):
        status = result.nodes[f"leaf{i}"].status
        assert (status == "skip") == (str(i) not in started)
