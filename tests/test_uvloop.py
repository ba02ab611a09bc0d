"""flowrt on uvloop (``pip install flowrt[uvloop]``): the loop's own clock, tasks, timeouts,
threads, cancellation and durable runs, on a real uvloop loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import anyio
import pytest

from flowrt import ErrorHandling, SQLiteStore, Workflow

uvloop = pytest.importorskip("uvloop")
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    return ("asyncio", {"use_uvloop": True})


async def test_the_loop_is_uvloop_and_a_run_retries_times_out_and_skips() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    wf = Workflow("on-uvloop")
    calls: list[int] = []

    @wf.node(error_handling=ErrorHandling(max_retries=2, retry_interval_seconds=0.01))
    async def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("transient")
        return len(calls)

    @wf.node(error_handling=ErrorHandling(timeout_seconds=0.05, behavior="return"))
    async def slow() -> None:
        await anyio.sleep(10)

    @wf.node(inputs={"value": "$.flaky.output"})
    def in_thread(value: int) -> int:
        time.sleep(0.01)
        return value * 10

    @wf.node(depends=[slow])
    async def after_slow() -> str:
        return "ran"

    result = await wf.run()
    assert result["flaky"].attempts == 3
    assert result["in_thread"].output == 30
    assert result["slow"].status == "failure"
    assert result["slow"].error.type == "TimeoutError"  # type: ignore[union-attr]
    assert result["after_slow"].output == "ran"  # behavior return: the failure is its result
    waited = result["flaky"].trace[1].started - result["flaky"].trace[0].started
    assert waited >= 0.01 - 0.002  # the retry waited (libuv's timers are to the millisecond)


async def test_cancelling_a_run_on_uvloop_stops_its_nodes() -> None:
    wf = Workflow("cancel-on-uvloop")
    stopped: list[str] = []

    @wf.node
    async def forever() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            stopped.append("forever")

    with anyio.move_on_after(0.05):
        await wf.run()
    assert stopped == ["forever"]


async def test_a_durable_run_on_uvloop(tmp_path: Path) -> None:
    wf = Workflow("durable-on-uvloop")
    wf.node(lambda: 1, name="one")
    with SQLiteStore(tmp_path / "runs.db") as store:
        result = await wf.run(store=store, run_id="r1")
        stored = await store.load_run("r1")
    assert result.status == "success"
    assert stored is not None
    assert stored.status == "success"


async def test_durations_on_uvloop_are_finer_than_its_millisecond_clock() -> None:
    wf = Workflow("fine-durations")

    @wf.node
    def spin() -> int:  # 0.3 ms of work in its thread, well inside one libuv millisecond tick
        end = time.perf_counter() + 0.0003
        while time.perf_counter() < end:
            pass
        return 1

    @wf.node
    async def quick() -> int:
        return 2

    durations = []
    for _ in range(5):
        result = await wf.run()
        durations.append(result["spin"].duration)
        assert result["quick"].duration < 0.001
    assert all(0.0003 <= d < 0.5 for d in durations), durations
    assert len({round(d, 6) for d in durations}) > 1  # measured, not multiples of 1 ms
