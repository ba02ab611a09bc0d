"""Sync nodes in worker threads: a timed-out attempt's thread cannot be killed, so it is
abandoned, but it never overlaps its own retry (the retry waits for it; the trace says how long),
and a thread still running when the run ends is reported as ``abandoned``. Real threads: real
clock, tolerant bounds."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import anyio
import anyio.from_thread
import pytest

from flowrt import ErrorHandling, Event, Workflow

pytestmark = pytest.mark.anyio


def timed_node(spans: list[list[float]], cooperative: bool) -> Any:
    def slow() -> str:
        span = [time.monotonic(), 0.0]
        spans.append(span)
        try:
            for _ in range(30):  # 0.3 s of work in 10 ms steps
                time.sleep(0.01)
                if cooperative:
                    anyio.from_thread.check_cancelled()  # stops once its attempt timed out
            return "done"
        finally:
            span[1] = time.monotonic()

    return slow


@pytest.mark.parametrize("cooperative", [False, True])
async def test_a_timed_out_thread_never_overlaps_its_retry(cooperative: bool) -> None:
    spans: list[list[float]] = []
    events: list[Event] = []
    wf = Workflow("threads")
    policy = ErrorHandling(max_retries=2, retry_interval_seconds=0, timeout_seconds=0.1)
    wf.node(timed_node(spans, cooperative), name="slow", error_handling=policy)
    wf.add_listener(events.append)
    result = await wf.run()
    for _ in range(100):  # let the last abandoned thread end before looking at its span
        if all(end for _, end in spans):
            break
        await anyio.sleep(0.01)
    assert result["slow"].attempts == 3
    assert len(spans) == 3
    for earlier, later in itertools.pairwise(spans):
        assert later[0] >= earlier[1]  # the retry started after the previous thread returned
    trace = result["slow"].trace
    finished = events[-1]
    if cooperative:  # the thread stops within a step of its timeout: nothing to wait for long
        assert all(a.held is None or a.held < 0.1 for a in trace)
        assert all(end - start < 0.2 for start, end in spans)
    else:  # each retry waited for the abandoned thread (about 0.2 s after the 0.1 s timeout)
        assert [a.held is not None and 0.1 < a.held < 0.4 for a in trace[:2]] == [True, True]
        assert finished.abandoned == ["slow"]  # the last attempt's thread outlived the run


async def test_a_run_deadline_returns_on_time_and_reports_the_abandoned_thread() -> None:
    release = threading.Event()
    events: list[Event] = []
    wf = Workflow("deadline-thread")

    @wf.node
    def blocker() -> str:
        release.wait(5)
        return "late"

    wf.add_listener(events.append)
    start = time.monotonic()
    try:
        result = await wf.run(timeout=0.2)
    finally:
        release.set()
    assert time.monotonic() - start < 1.0
    assert result["blocker"].error is not None
    assert result["blocker"].error.type == "TimeoutError"
    assert events[-1].kind == "run.finished"
    assert events[-1].abandoned == ["blocker"]


async def test_a_run_whose_threads_all_returned_reports_none_abandoned() -> None:
    events: list[Event] = []
    wf = Workflow("clean")
    wf.node(lambda: 1, name="quick")
    wf.add_listener(events.append)
    await wf.run()
    assert events[-1].abandoned is None
