"""``_engine.probe.Probe`` against a plain ``await``: the same values, exceptions and steps for
any coroutine, cancelled anywhere (hypothesis), and ``suspended`` exactly when it let the loop
run; then what it is for: a chain on a busy loop takes no extra loop turn per node, and a chain
of nodes that never await still lets other tasks run after each 0.2 ms."""

from __future__ import annotations

import asyncio
import time
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowrt import Workflow
from flowrt._engine.probe import probe

# A script: what the coroutine does, step by step, until it returns or raises.
steps = st.lists(
    st.sampled_from(["sleep", "work", "catch-cancel", "shield-sleep"]), max_size=6
).map(tuple)
endings = st.sampled_from(["return", "raise", "raise-base"])


class Stop(BaseException):
    """Not an Exception (as a cancellation is not): it goes through as it is."""


async def scripted(script: tuple[str, ...], ending: str, log: list[str]) -> Any:
    for number, step in enumerate(script):
        log.append(step)
        if step == "sleep":
            await asyncio.sleep(0)
        elif step == "catch-cancel":
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                log.append("caught")
                await asyncio.sleep(0)  # awaits again while cancelled: goes on
                return ("swallowed", number)
        elif step == "shield-sleep":
            await asyncio.sleep(0)
            await asyncio.sleep(0)
    if ending == "raise":
        raise ValueError(len(script))
    if ending == "raise-base":
        raise Stop(len(script))
    return ("done", len(script))


async def outcome(probed: bool, script: tuple[str, ...], ending: str, cancel_at: int | None) -> Any:
    """What awaiting the script (in a Probe or not) gives, cancelled after ``cancel_at`` loop
    turns (None: never)."""
    log: list[str] = []
    seen = [False]

    async def awaiting() -> Any:
        if probed:
            return await probe(scripted(script, ending, log), seen)
        return await scripted(script, ending, log)

    task = asyncio.ensure_future(awaiting())
    turns = 0
    while not task.done():
        if cancel_at is not None and turns == cancel_at:
            task.cancel()
        await asyncio.sleep(0)
        turns += 1
    try:
        result: Any = ("value", task.result())
    except BaseException as exc:  # the outcome is compared, whatever it is
        result = ("raised", type(exc).__name__, exc.args)
    return result, log, seen[0] if probed else None


@settings(max_examples=300, deadline=None)
@given(script=steps, ending=endings, cancel_at=st.none() | st.integers(0, 8))
def test_a_probe_awaits_as_await_does(
    script: tuple[str, ...], ending: str, cancel_at: int | None
) -> None:
    probed, probed_log, suspended = asyncio.run(outcome(True, script, ending, cancel_at))
    plain, plain_log, _ = asyncio.run(outcome(False, script, ending, cancel_at))
    assert probed == plain
    assert probed_log == plain_log
    if cancel_at != 0:  # (cancelled before it started, it never ran)
        awaited = any(step != "work" for step in probed_log)  # it reached an await
        assert suspended is awaited


def test_a_probe_closed_while_it_waits_closes_the_coroutine() -> None:
    closed: list[str] = []

    @types.coroutine
    def suspend() -> Any:
        yield "a future"

    async def waits() -> None:
        try:
            await suspend()
        finally:
            closed.append("closed")

    awaiting = probe(waits(), [False])
    next(awaiting)  # it waits on the future
    awaiting.close()
    assert closed == ["closed"]


def busy(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def chain(fn: Any, nodes: int) -> Workflow:
    wf = Workflow("probed")
    wf.node(fn, name="n0", inputs={"x": "$.input.x"})
    for i in range(1, nodes):
        wf.node(fn, name=f"n{i}", inputs={"x": f"$.n{i - 1}.output"})
    wf.validate()
    return wf


async def turns_beside(wf: Workflow, tick: float) -> tuple[Any, int]:
    """Run ``wf`` beside a task that works ``tick`` seconds at each of its loop turns (a busy
    loop); return the result and how many turns that task had meanwhile."""
    turns = 0
    running = True

    async def other() -> None:
        nonlocal turns
        while running:
            busy(tick)
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(other())
    await asyncio.sleep(0)
    start = turns
    try:
        result = await wf.run({"x": 0})
    finally:
        running = False
        await ticker
    return result, turns - start


@pytest.mark.parametrize("nodes", [10, 40])
def test_a_chain_on_a_busy_loop_takes_no_extra_turn_per_node(nodes: int) -> None:
    """Each node awaits once, and each await takes longer than 0.2 ms (the other task works
    0.3 ms a turn): the chain yields to the loop once per node, as the same awaits written
    by hand do, not twice (its nodes are probed once it runs late)."""

    async def step(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    result, turns = asyncio.run(turns_beside(chain(step, nodes), 0.0003))
    assert result[f"n{nodes - 1}"].output == nodes
    # one turn per node's await, plus at most a couple (the first node is not probed)
    assert nodes <= turns <= nodes + 3


def test_a_chain_of_nodes_that_never_await_still_lets_others_run() -> None:
    """Nodes of 0.3 ms each that never await: the probe sees that none let the loop run, so
    the task yields after each (0.2 ms without a turn), as before."""

    async def hog(x: int) -> int:
        busy(0.0003)
        return x + 1

    result, turns = asyncio.run(turns_beside(chain(hog, 12), 0.0))
    assert result["n11"].output == 12
    assert turns >= 10
