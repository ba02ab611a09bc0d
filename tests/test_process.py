"""executor="process": sync functions in a worker process that is killed on timeout."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest
from process_fns import sleep_then_mark, square

from flowrt import ErrorHandling, Workflow

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_process_node_runs_in_another_process() -> None:
    wf = Workflow("proc")
    wf.node(square, executor="process")
    result = await wf.run({"x": 7})
    assert result["square"].output["square"] == 49
    assert result["square"].output["pid"] != os.getpid()


async def test_a_cold_worker_start_does_not_count_against_the_timeout(tmp_path: Path) -> None:
    wf = Workflow("cold")
    wf.node(
        sleep_then_mark,
        executor="process",
        inputs={"marker": str(tmp_path / "marker"), "seconds": 0.1},
        error_handling=ErrorHandling(timeout_seconds=0.5, max_retries=2),
    )
    result = await wf.run()  # a new event loop: no worker process has started yet
    assert (result.status, result["sleep_then_mark"].attempts) == ("success", 1)


async def test_a_timed_out_process_node_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    warm = Workflow("warm")
    warm.node(square, executor="process")
    await warm.run({"x": 1})  # a worker has started: the time below is the function's own
    wf = Workflow("hard-timeout")
    wf.node(
        sleep_then_mark,
        executor="process",
        inputs={"marker": str(marker), "seconds": 1.0},
        error_handling=ErrorHandling(timeout_seconds=0.3),
    )
    start = time.perf_counter()
    result = await wf.run()
    assert time.perf_counter() - start < 0.9  # not waiting for the 1 s sleep
    assert result["sleep_then_mark"].error is not None
    assert result["sleep_then_mark"].error.type == "TimeoutError"
    assert "attempt 1 of 1 timed out after 0.3s" in result["sleep_then_mark"].error.message
    await anyio.sleep(1.2)  # had the process lived on, it would have written the marker by now
    assert not marker.exists()
