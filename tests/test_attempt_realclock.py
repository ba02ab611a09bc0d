"""A few real-clock smoke tests on asyncio with tolerant bounds."""

from __future__ import annotations

import time

import anyio
import pytest

from flowrt import ErrorHandling, Workflow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_backoff_waits_on_a_real_clock() -> None:
    calls: list[float] = []

    async def flaky() -> str:
        calls.append(time.perf_counter())
        if len(calls) < 3:
            raise ConnectionError("down")
        return "up"

    wf = Workflow("real")
    wf.node(
        flaky,
        error_handling=ErrorHandling(max_retries=2, retry_interval_seconds=0.05, backoff_rate=2),
    )
    result = await wf.run()
    assert result["flaky"].output == "up"
    first, second = calls[1] - calls[0], calls[2] - calls[1]
    assert 0.045 <= first < 0.5
    assert 0.095 <= second < 0.6


@pytest.mark.anyio
async def test_timeout_on_a_real_clock_for_a_sync_node() -> None:
    def blocking() -> str:
        time.sleep(0.5)
        return "late"

    wf = Workflow("real")
    wf.node(blocking, error_handling=ErrorHandling(timeout_seconds=0.05))
    start = time.perf_counter()
    result = await wf.run()
    assert time.perf_counter() - start < 0.4  # the abandoned thread is not waited for
    assert result["blocking"].error is not None
    assert result["blocking"].error.type == "TimeoutError"
    await anyio.sleep(0.5)  # let the abandoned worker thread finish before the loop closes
