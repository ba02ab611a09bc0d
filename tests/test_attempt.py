"""Retries, backoff and per-attempt timeouts, on trio's MockClock: waits are exact and instant."""

from __future__ import annotations

import itertools
import random
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from flowrt import ErrorHandling, Workflow


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


def flaky(failures: int, times: list[float], exc: type[Exception] = ConnectionError) -> Any:
    """An async node function failing ``failures`` times, recording when each call started."""

    async def fn() -> str:
        times.append(anyio.current_time())
        if len(times) <= failures:
            raise exc(f"failure {len(times)}")
        return "ok"

    return fn


def relative(times: list[float]) -> list[float]:
    return [round(t - times[0], 9) for t in times]


@pytest.mark.anyio
async def test_attempts_are_max_retries_plus_one() -> None:
    times: list[float] = []
    wf = Workflow("w")
    wf.node(
        flaky(99, times),
        name="always",
        error_handling=ErrorHandling(max_retries=3, retry_interval_seconds=0),
    )
    result = await wf.run()
    assert result["always"].status == "failure"
    assert result["always"].attempts == 4
    assert len(times) == 4
    assert result["always"].error is not None
    assert result["always"].error.message == "failure 4"


@pytest.mark.anyio
async def test_success_stops_retrying() -> None:
    times: list[float] = []
    wf = Workflow("w")
    wf.node(
        flaky(2, times),
        name="twice",
        error_handling=ErrorHandling(max_retries=5, retry_interval_seconds=0),
    )
    result = await wf.run()
    assert (result["twice"].status, result["twice"].attempts, result["twice"].output) == (
        "success",
        3,
        "ok",
    )


@pytest.mark.anyio
async def test_backoff_waits_interval_times_rate_to_the_k() -> None:
    times: list[float] = []
    wf = Workflow("w")
    policy = ErrorHandling(max_retries=3, retry_interval_seconds=1, backoff_rate=2)
    wf.node(flaky(3, times), name="n", error_handling=policy)
    await wf.run()
    assert relative(times) == [0, 1, 3, 7]


@pytest.mark.anyio
async def test_max_interval_caps_each_wait() -> None:
    times: list[float] = []
    wf = Workflow("w")
    policy = ErrorHandling(
        max_retries=3, retry_interval_seconds=1, backoff_rate=10, max_interval_seconds=5
    )
    wf.node(flaky(3, times), name="n", error_handling=policy)
    await wf.run()
    assert relative(times) == [0, 1, 6, 11]


@pytest.mark.anyio
async def test_jitter_keeps_each_wait_within_bounds() -> None:
    times: list[float] = []
    wf = Workflow("w", rng=random.Random(5))
    policy = ErrorHandling(max_retries=6, retry_interval_seconds=2, jitter=0.5)
    wf.node(flaky(6, times), name="n", error_handling=policy)
    await wf.run()
    waits = [b - a for a, b in itertools.pairwise(times)]
    assert len(waits) == 6
    assert all(1 - 1e-9 <= wait <= 2 + 1e-9 for wait in waits)
    assert len({round(wait, 6) for wait in waits}) > 1


@pytest.mark.anyio
async def test_trace_records_each_attempt_and_the_wait_after_it() -> None:
    times: list[float] = []
    wf = Workflow("w")
    wf.node(
        flaky(2, times),
        name="n",
        error_handling=ErrorHandling(max_retries=2, retry_interval_seconds=3),
    )
    result = await wf.run()
    trace = result["n"].trace
    assert [(a.attempt, a.wait) for a in trace] == [(1, 3), (2, 3), (3, None)]
    assert [a.error.type if a.error else None for a in trace] == [
        "ConnectionError",
        "ConnectionError",
        None,
    ]
    assert trace[1].started - trace[0].started == pytest.approx(3)


@pytest.mark.anyio
async def test_retry_on_tuple_fails_at_once_on_other_errors() -> None:
    times: list[float] = []
    wf = Workflow("w")
    policy = ErrorHandling(max_retries=5, retry_interval_seconds=0, retry_on=(ConnectionError,))
    wf.node(flaky(1, times, exc=ValueError), name="n", error_handling=policy)
    result = await wf.run()
    assert (result["n"].status, result["n"].attempts) == ("failure", 1)


@pytest.mark.anyio
async def test_retry_on_tuple_retries_matching_errors() -> None:
    times: list[float] = []
    wf = Workflow("w")
    policy = ErrorHandling(max_retries=5, retry_interval_seconds=0, retry_on=(OSError,))
    wf.node(flaky(2, times, exc=ConnectionError), name="n", error_handling=policy)
    result = await wf.run()
    assert (result["n"].status, result["n"].attempts) == ("success", 3)


@pytest.mark.anyio
async def test_retry_on_predicate() -> None:
    times: list[float] = []
    wf = Workflow("w")
    policy = ErrorHandling(
        max_retries=5, retry_interval_seconds=0, retry_on=lambda exc: "failure 1" in str(exc)
    )
    wf.node(flaky(5, times), name="n", error_handling=policy)
    result = await wf.run()
    assert result["n"].attempts == 2  # retried after "failure 1", not after "failure 2"


@pytest.mark.anyio
async def test_timeout_then_retry_then_success_without_overlap() -> None:
    log: list[tuple[str, int, float]] = []

    async def slow_then_fast() -> str:
        attempt = sum(1 for entry in log if entry[0] == "start") + 1
        log.append(("start", attempt, anyio.current_time()))
        try:
            if attempt == 1:
                await anyio.sleep(100)
            return f"done on {attempt}"
        finally:
            log.append(("end", attempt, anyio.current_time()))

    wf = Workflow("w")
    policy = ErrorHandling(max_retries=2, retry_interval_seconds=0.5, timeout_seconds=1)
    wf.node(slow_then_fast, name="fetch", error_handling=policy)
    result = await wf.run()
    assert (result["fetch"].status, result["fetch"].output, result["fetch"].attempts) == (
        "success",
        "done on 2",
        2,
    )
    t0 = log[0][2]
    # attempt 1 was cancelled at the 1 s limit, before attempt 2 started 0.5 s later
    assert [(kind, n, t - t0) for kind, n, t in log] == [
        ("start", 1, 0),
        ("end", 1, 1),
        ("start", 2, 1.5),
        ("end", 2, 1.5),
    ]
    first = result["fetch"].trace[0]
    assert first.error is not None
    assert first.error.type == "TimeoutError"
    assert first.error.message == "node 'fetch' attempt 1 of 3 timed out after 1s"


@pytest.mark.anyio
async def test_timeouts_are_retried_only_if_retry_on_allows() -> None:
    async def hang() -> None:
        await anyio.sleep(100)

    wf = Workflow("w")
    wf.node(
        hang, error_handling=ErrorHandling(max_retries=3, timeout_seconds=1, retry_on=(ValueError,))
    )
    result = await wf.run()
    assert (result["hang"].status, result["hang"].attempts) == ("failure", 1)
    assert result["hang"].error is not None
    assert result["hang"].error.type == "TimeoutError"


@pytest.mark.anyio
async def test_a_node_finishing_within_its_timeout_is_not_cancelled() -> None:
    async def quick() -> int:
        await anyio.sleep(0.9)
        return 1

    wf = Workflow("w")
    wf.node(quick, error_handling=ErrorHandling(timeout_seconds=1))
    assert (await wf.run())["quick"].output == 1


@pytest.mark.anyio
async def test_each_attempt_records_its_own_error_across_attempts_and_runs() -> None:
    messages = iter(["down", "down", "busy", "down", "busy", "busy"])

    async def fn() -> None:
        raise ConnectionError(next(messages))

    wf = Workflow("w")
    wf.node(fn, name="n", error_handling=ErrorHandling(max_retries=2, retry_interval_seconds=0))
    for expected in (["down", "down", "busy"], ["down", "busy", "busy"]):
        result = await wf.run()
        trace = result["n"].trace
        assert [a.error.message for a in trace if a.error] == expected
        assert result["n"].error is not None
        assert result["n"].error.message == expected[-1]


@pytest.mark.anyio
async def test_trace_start_times_count_from_the_run_start() -> None:
    wf = Workflow("timeline")

    @wf.node
    async def first() -> None:
        await anyio.sleep(5)

    @wf.node(depends=[first], error_handling=ErrorHandling(max_retries=1, retry_interval_seconds=2))
    async def second() -> None:
        await anyio.sleep(1)
        raise RuntimeError("always")

    await anyio.sleep(100)  # the clock is far from zero when the run starts
    result = await wf.run()
    assert [a.started for a in result["first"].trace] == [0.0]
    assert [(a.started, a.duration) for a in result["second"].trace] == [(5.0, 1.0), (8.0, 1.0)]
